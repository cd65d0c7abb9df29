{%- set raw_columns = [
    'condition_id', 'market_slug', 'event_slug', 'title', 'status', 'side_a_token_id',
    'side_a_label', 'side_b_token_id', 'side_b_label', 'winning_token_id', 'winning_label',
    'start_time', 'end_time', 'close_time', 'completed_time', 'game_start_time',
    'volume_1_week', 'volume_1_month', 'volume_1_year', 'volume_total', 'negative_risk_id',
    'price_to_beat', 'final_price', '_sdc_extracted_at', '_sdc_batched_at',
] -%}

with

source as (

    {{ dome_optional_source('markets', raw_columns) }}

),

renamed as (

    select

        ----------  ids
        lower(cast(condition_id as {{ dbt.type_string() }})) as condition_id,
        cast(market_slug as {{ dbt.type_string() }}) as market_slug,
        cast(event_slug as {{ dbt.type_string() }}) as event_slug,
        cast(title as {{ dbt.type_string() }}) as market_title,
        cast(negative_risk_id as {{ dbt.type_string() }}) as negative_risk_id,

        ----------  outcomes
        cast(side_a_token_id as {{ dbt.type_string() }}) as side_a_token_id,
        cast(side_a_label as {{ dbt.type_string() }}) as side_a_label,
        cast(side_b_token_id as {{ dbt.type_string() }}) as side_b_token_id,
        cast(side_b_label as {{ dbt.type_string() }}) as side_b_label,
        cast(winning_token_id as {{ dbt.type_string() }}) as winning_token_id,
        cast(winning_label as {{ dbt.type_string() }}) as winning_label,

        ----------  lifecycle
        cast(status as {{ dbt.type_string() }}) as market_status,
        {{ dome_timestamp_from_unix('start_time') }} as started_at,
        {{ dome_timestamp_from_unix('end_time') }} as scheduled_end_at,
        {{ dome_timestamp_from_unix('close_time') }} as closed_at,
        {{ dome_timestamp_from_unix('completed_time') }} as resolved_at,
        cast(game_start_time as {{ dbt.type_string() }}) as game_start_time,

        ----------  volumes and up/down prices
        cast(volume_1_week as {{ dome_type_double() }}) as volume_1_week_usd,
        cast(volume_1_month as {{ dome_type_double() }}) as volume_1_month_usd,
        cast(volume_1_year as {{ dome_type_double() }}) as volume_1_year_usd,
        cast(volume_total as {{ dome_type_double() }}) as volume_total_usd,
        cast(price_to_beat as {{ dome_type_double() }}) as price_to_beat,
        cast(final_price as {{ dome_type_double() }}) as final_price,

        ----------  loader metadata
        {{ dome_utc_timestamp('_sdc_extracted_at') }} as extracted_at,
        {{ dome_load_timestamp('_sdc_batched_at') }} as batched_at

    from source

)

select * from renamed
