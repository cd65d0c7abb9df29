{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy=dome_incremental_strategy(),
        partition_by=dome_partition_by_day('filled_date'),
        cluster_by=dome_cluster_by(['wallet', 'condition_id']),
        on_schema_change='fail',
    )
}}

{#- The columns a fill carries from staging, in order. -#}
{%- set fill_columns = [
    'order_id', 'wallet', 'tx_hash', 'log_index', 'block_number', 'order_hash',
    'user_address', 'taker_address', 'condition_id', 'market_slug', 'market_title',
    'token_id', 'token_label', 'side', 'shares', 'shares_normalized', 'price',
    'filled_at_unix', 'filled_at', 'filled_date', 'extracted_at', 'batched_at',
] -%}

{%- if is_incremental() -%}
    {%- set window = dome_incremental_window(ref('stg_dome__orders')) -%}
{%- endif %}

with

orders as (

    -- incremental: only raw rows loaded since the last run (less the safety margin)
    select {{ fill_columns | join(', ') }}
    from {{ ref('stg_dome__orders') }}
    {% if is_incremental() -%}
        where
            batched_at >= {{ window.cutoff }}
            and filled_date in {{ window.touched_days }}
    {%- endif %}

),

already_loaded as (

    -- incremental: the fills already here on the days the new rows touch, so that the output
    -- holds those days complete (insert_overwrite replaces whole day partitions on BigQuery)
    {% if is_incremental() -%}
        select {{ fill_columns | join(', ') }}
        from {{ this }}
        where filled_date in {{ window.touched_days }}
    {%- else -%}
        select * from orders
        where false
    {%- endif %}

),

copies as (

    select * from orders
    union all
    select * from already_loaded

),

ranked as (

    select
        *,
        {{ dome_copy_rank('order_id', fill_columns) }} as copy_rank
    from copies

),

final as (

    select
        {{ fill_columns | join(',\n        ') }},
        shares_normalized * price as notional_usdc

    from ranked
    where copy_rank = 1

)

select * from final
