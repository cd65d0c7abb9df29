{%- set raw_columns = [
    'activity_id', 'wallet', 'user', 'side', 'token_id', 'market_slug', 'condition_id', 'title',
    'shares', 'shares_normalized', 'price', 'tx_hash', 'log_index', 'block_number',
    'order_hash', 'timestamp', 'occurred_at', '_sdc_extracted_at', '_sdc_batched_at',
] -%}

with

source as (

    {{ dome_optional_source('activity', raw_columns) }}

),

renamed as (

    select

        ----------  ids
        cast(activity_id as {{ dbt.type_string() }}) as activity_id,
        cast(wallet as {{ dbt.type_string() }}) as wallet,
        cast(tx_hash as {{ dbt.type_string() }}) as tx_hash,
        cast(log_index as {{ dbt.type_bigint() }}) as log_index,
        cast(block_number as {{ dbt.type_bigint() }}) as block_number,
        cast(order_hash as {{ dbt.type_string() }}) as order_hash,
        cast({{ adapter.quote('user') }} as {{ dbt.type_string() }}) as user_address,

        ----------  market
        lower(cast(condition_id as {{ dbt.type_string() }})) as condition_id,
        cast(market_slug as {{ dbt.type_string() }}) as market_slug,
        cast(title as {{ dbt.type_string() }}) as market_title,
        cast(token_id as {{ dbt.type_string() }}) as token_id,

        ----------  event
        cast(side as {{ dbt.type_string() }}) as activity_type,
        cast(shares as {{ dbt.type_bigint() }}) as shares,
        cast(shares_normalized as {{ dome_type_double() }}) as shares_normalized,
        cast(price as {{ dome_type_double() }}) as price,

        ----------  timestamps
        cast({{ adapter.quote('timestamp') }} as {{ dbt.type_bigint() }}) as occurred_at_unix,
        coalesce(
            {{ dome_utc_timestamp('occurred_at') }},
            {{ dome_timestamp_from_unix(adapter.quote('timestamp')) }}
        ) as occurred_at,

        ----------  loader metadata
        {{ dome_utc_timestamp('_sdc_extracted_at') }} as extracted_at,
        {{ dome_load_timestamp('_sdc_batched_at') }} as batched_at

    from source

),

final as (

    select
        *,
        cast(occurred_at as date) as occurred_date

    from renamed

)

select * from final
