{{
    config(
        cluster_by=dome_cluster_by(['condition_id']),
    )
}}

{#- The columns of a market read, in order: the latest read of each market wins. -#}
{%- set market_columns = [
    'condition_id', 'market_slug', 'event_slug', 'market_title', 'negative_risk_id',
    'side_a_token_id', 'side_a_label', 'side_b_token_id', 'side_b_label', 'winning_token_id',
    'winning_label', 'market_status', 'started_at', 'scheduled_end_at', 'closed_at',
    'resolved_at', 'game_start_time', 'volume_1_week_usd', 'volume_1_month_usd',
    'volume_1_year_usd', 'volume_total_usd', 'price_to_beat', 'final_price', 'extracted_at',
    'batched_at',
] -%}

with

reads as (

    select {{ market_columns | join(', ') }}
    from {{ ref('stg_dome__markets') }}
    where condition_id is not null

),

ranked as (

    select
        *,
        {{ dome_copy_rank('condition_id', market_columns) }} as read_rank
    from reads

),

final as (

    select
        {{ market_columns | join(',\n        ') }},
        winning_token_id is not null as is_resolved

    from ranked
    where read_rank = 1

)

select * from final
