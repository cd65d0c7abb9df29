{{
    config(
        partition_by=dome_partition_by_day('filled_date'),
        cluster_by=dome_cluster_by(['wallet', 'condition_id']),
    )
}}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

final as (

    select
        wallet,
        condition_id,
        filled_date,
        max(market_slug) as market_slug,
        max(market_title) as market_title,

        count(*) as fills,
        sum(case when side = 'BUY' then 1 else 0 end) as buy_fills,
        sum(case when side = 'SELL' then 1 else 0 end) as sell_fills,

        sum(shares_normalized) as shares,
        sum(case when side = 'BUY' then shares_normalized else 0 end) as buy_shares,
        sum(case when side = 'SELL' then shares_normalized else 0 end) as sell_shares,

        sum(notional_usdc) as notional_usdc,
        sum(case when side = 'BUY' then notional_usdc else 0 end) as buy_notional_usdc,
        sum(case when side = 'SELL' then notional_usdc else 0 end) as sell_notional_usdc,

        min(filled_at) as first_fill_at,
        max(filled_at) as last_fill_at

    from orders
    group by wallet, condition_id, filled_date

)

select * from final
