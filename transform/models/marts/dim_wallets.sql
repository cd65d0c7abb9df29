{{
    config(
        cluster_by=dome_cluster_by(['wallet']),
    )
}}

with

wallet_daily as (

    select * from {{ ref('wallet_daily') }}

),

final as (

    select
        wallet,
        min(first_fill_at) as first_fill_at,
        max(last_fill_at) as last_fill_at,
        count(distinct filled_date) as active_days,
        count(distinct condition_id) as markets_traded,

        sum(fills) as fills,
        sum(buy_fills) as buy_fills,
        sum(sell_fills) as sell_fills,

        sum(shares) as shares,
        sum(notional_usdc) as notional_usdc,
        sum(buy_notional_usdc) as buy_notional_usdc,
        sum(sell_notional_usdc) as sell_notional_usdc

    from wallet_daily
    group by wallet

)

select * from final
