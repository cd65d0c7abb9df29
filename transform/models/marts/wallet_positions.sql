{{
    config(
        cluster_by=dome_cluster_by(['wallet', 'condition_id']),
    )
}}

{#-
    Per wallet and outcome token: shares in and out through fills and activity, the position
    left, and on resolved markets the realised PnL. Definitions and limits: _wallet_positions.md.
-#}
{%- set zero = 'cast(0 as ' ~ dome_type_double() ~ ')' -%}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

activity as (

    select * from {{ ref('fct_activity') }}

),

markets as (

    select * from {{ ref('dim_markets') }}

),

-- a fill moves its own token: BUY in (paying its notional), SELL out (receiving it)
fill_legs as (

    select
        wallet,
        condition_id,
        token_id,
        case when side = 'BUY' then shares_normalized else {{ zero }} end as bought_shares,
        case when side = 'SELL' then shares_normalized else {{ zero }} end as sold_shares,
        {{ zero }} as split_shares,
        {{ zero }} as merged_shares,
        {{ zero }} as redeemed_shares,
        case when side = 'BUY' then notional_usdc else {{ zero }} end as buy_cost_usdc,
        case when side = 'SELL' then notional_usdc else {{ zero }} end as sell_proceeds_usdc,
        1 as fills,
        0 as activity_events

    from orders

),

-- a SPLIT or MERGE moves one share of each outcome token of the market per set, for 1 USDC a
-- set, attributed half to each token; without a market row, only the row's own token moves
split_merge as (

    select
        activity.*,
        markets.side_a_token_id,
        markets.side_b_token_id

    from activity
    left join markets on activity.condition_id = markets.condition_id
    where activity.activity_type in ('SPLIT', 'MERGE')

),

set_tokens as (

    select
        split_merge.*,
        coalesce(side_a_token_id, token_id) as leg_token_id
    from split_merge
    union all
    select
        split_merge.*,
        side_b_token_id as leg_token_id
    from split_merge
    where side_b_token_id is not null

),

set_legs as (

    select
        wallet,
        condition_id,
        leg_token_id as token_id,
        {{ zero }} as bought_shares,
        {{ zero }} as sold_shares,
        case when activity_type = 'SPLIT' then shares_normalized else {{ zero }} end as split_shares,
        case when activity_type = 'MERGE' then shares_normalized else {{ zero }} end as merged_shares,
        {{ zero }} as redeemed_shares,
        case when activity_type = 'SPLIT' then 0.5 * shares_normalized else {{ zero }} end
            as buy_cost_usdc,
        case when activity_type = 'MERGE' then 0.5 * shares_normalized else {{ zero }} end
            as sell_proceeds_usdc,
        0 as fills,
        1 as activity_events

    from set_tokens

),

-- a REDEEM hands its token in for the payout
redeem_legs as (

    select
        wallet,
        condition_id,
        token_id,
        {{ zero }} as bought_shares,
        {{ zero }} as sold_shares,
        {{ zero }} as split_shares,
        {{ zero }} as merged_shares,
        shares_normalized as redeemed_shares,
        {{ zero }} as buy_cost_usdc,
        {{ zero }} as sell_proceeds_usdc,
        0 as fills,
        1 as activity_events

    from activity
    where activity_type = 'REDEEM'

),

legs as (

    select * from fill_legs
    union all
    select * from set_legs
    union all
    select * from redeem_legs

),

positions as (

    select
        wallet,
        condition_id,
        token_id,
        sum(fills) as fills,
        sum(activity_events) as activity_events,
        sum(bought_shares) as bought_shares,
        sum(sold_shares) as sold_shares,
        sum(split_shares) as split_shares,
        sum(merged_shares) as merged_shares,
        sum(redeemed_shares) as redeemed_shares,
        sum(buy_cost_usdc) as buy_cost_usdc,
        sum(sell_proceeds_usdc) as sell_proceeds_usdc

    from legs
    group by wallet, condition_id, token_id

),

valued as (

    select
        positions.*,
        markets.market_slug,
        markets.market_title,
        case
            when positions.token_id = markets.side_a_token_id then markets.side_a_label
            when positions.token_id = markets.side_b_token_id then markets.side_b_label
        end as outcome_label,
        coalesce(markets.is_resolved, false) as is_resolved,
        case
            when markets.winning_token_id is null then null
            when positions.token_id = markets.winning_token_id then 1.0
            else 0.0
        end as payout_per_share,
        positions.bought_shares - positions.sold_shares + positions.split_shares
        - positions.merged_shares - positions.redeemed_shares as net_shares

    from positions
    left join markets on positions.condition_id = markets.condition_id

),

final as (

    select
        wallet,
        condition_id,
        token_id,
        outcome_label,
        market_slug,
        market_title,
        is_resolved,
        payout_per_share = 1.0 as is_winning_outcome,
        fills,
        activity_events,
        bought_shares,
        sold_shares,
        split_shares,
        merged_shares,
        redeemed_shares,
        net_shares,
        buy_cost_usdc,
        sell_proceeds_usdc,
        redeemed_shares * payout_per_share as redeem_proceeds_usdc,
        net_shares * payout_per_share as settlement_value_usdc,
        sell_proceeds_usdc + redeemed_shares * payout_per_share + net_shares * payout_per_share
        - buy_cost_usdc as realized_pnl_usdc

    from valued

)

select * from final
