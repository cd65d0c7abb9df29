with

source as (

    select * from {{ source('dome', 'orders') }}

),

renamed as (

    select

        ----------  ids
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(wallet as {{ dbt.type_string() }}) as wallet,
        cast(tx_hash as {{ dbt.type_string() }}) as tx_hash,
        cast(log_index as {{ dbt.type_bigint() }}) as log_index,
        cast(block_number as {{ dbt.type_bigint() }}) as block_number,
        cast(order_hash as {{ dbt.type_string() }}) as order_hash,
        cast({{ adapter.quote('user') }} as {{ dbt.type_string() }}) as user_address,
        cast(taker as {{ dbt.type_string() }}) as taker_address,

        ----------  market
        cast(condition_id as {{ dbt.type_string() }}) as condition_id,
        cast(market_slug as {{ dbt.type_string() }}) as market_slug,
        cast(title as {{ dbt.type_string() }}) as market_title,
        cast(token_id as {{ dbt.type_string() }}) as token_id,
        cast(token_label as {{ dbt.type_string() }}) as token_label,

        ----------  fill
        cast(side as {{ dbt.type_string() }}) as side,
        cast(shares as {{ dbt.type_bigint() }}) as shares,
        cast(shares_normalized as {{ dome_type_double() }}) as shares_normalized,
        cast(price as {{ dome_type_double() }}) as price,

        ----------  timestamps
        cast({{ adapter.quote('timestamp') }} as {{ dbt.type_bigint() }}) as filled_at_unix,
        coalesce(
            {{ dome_utc_timestamp('filled_at') }},
            {{ dome_timestamp_from_unix(adapter.quote('timestamp')) }}
        ) as filled_at,

        ----------  loader metadata
        {{ dome_utc_timestamp('_sdc_extracted_at') }} as extracted_at,
        {{ dome_load_timestamp('_sdc_batched_at') }} as batched_at

    from source

),

final as (

    select
        *,
        cast(filled_at as date) as filled_date

    from renamed

)

select * from final
