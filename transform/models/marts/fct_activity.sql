{{
    config(
        materialized='incremental',
        unique_key='activity_id',
        incremental_strategy=dome_incremental_strategy(),
        partition_by=dome_partition_by_day('occurred_date'),
        cluster_by=dome_cluster_by(['wallet', 'condition_id']),
        on_schema_change='fail',
    )
}}

{#-
    One row per SPLIT / MERGE / REDEEM event, deduplicated exactly as fct_orders deduplicates
    fills (see its docs): the newest copy of each activity_id wins (dome_copy_rank), and an
    incremental run rewrites whole the event days (occurred_date) its new raw rows touch.
-#}
{%- set event_columns = [
    'activity_id', 'wallet', 'tx_hash', 'log_index', 'block_number', 'order_hash',
    'user_address', 'condition_id', 'market_slug', 'market_title', 'token_id', 'activity_type',
    'shares', 'shares_normalized', 'price', 'occurred_at_unix', 'occurred_at', 'occurred_date',
    'extracted_at', 'batched_at',
] -%}

{%- if is_incremental() -%}
    {%- set window = dome_incremental_window(ref('stg_dome__activity'), 'occurred_date') -%}
{%- endif %}

with

events as (

    -- incremental: only raw rows loaded since the last run (less the safety margin)
    select {{ event_columns | join(', ') }}
    from {{ ref('stg_dome__activity') }}
    where activity_id is not null
    {% if is_incremental() -%}
        and batched_at >= {{ window.cutoff }}
        and occurred_date in {{ window.touched_days }}
    {%- endif %}

),

already_loaded as (

    -- incremental: the events already here on the days the new rows touch
    {% if is_incremental() -%}
        select {{ event_columns | join(', ') }}
        from {{ this }}
        where occurred_date in {{ window.touched_days }}
    {%- else -%}
        select * from events
        where false
    {%- endif %}

),

copies as (

    select * from events
    union all
    select * from already_loaded

),

ranked as (

    select
        *,
        {{ dome_copy_rank('activity_id', event_columns) }} as copy_rank
    from copies

),

final as (

    select {{ event_columns | join(',\n        ') }}

    from ranked
    where copy_rank = 1

)

select * from final
