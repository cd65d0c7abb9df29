{{
    config(
        cluster_by=dome_cluster_by(['wallet']),
    )
}}

with

audits as (

    select * from {{ ref('stg_dome__wallet_audits') }}
    where wallet is not null

),

latest_audit as (

    select *
    from (
        select
            *,
            row_number() over (
                partition by wallet
                order by
                    audited_at desc nulls last,
                    batched_at desc nulls last,
                    audit_id desc
            ) as audit_rank
        from audits
    ) as ranked
    where audit_rank = 1

),

orders as (

    select wallet, filled_at_unix from {{ ref('fct_orders') }}

),

held as (

    -- the fills the warehouse holds in each wallet's audited range (bounds inclusive, as the API's)
    select
        latest_audit.wallet,
        count(orders.filled_at_unix) as warehouse_fills

    from latest_audit
    left join orders
        on
            latest_audit.wallet = orders.wallet
            and orders.filled_at_unix >= latest_audit.range_start_unix
            and orders.filled_at_unix <= latest_audit.range_end_unix
    group by latest_audit.wallet

),

final as (

    select
        latest_audit.wallet,
        latest_audit.audit_id,
        latest_audit.audited_at,
        latest_audit.audit_source,
        latest_audit.range_start_unix,
        latest_audit.range_end_unix,
        {{ dome_timestamp_from_unix('latest_audit.range_start_unix') }} as range_start_at,
        {{ dome_timestamp_from_unix('latest_audit.range_end_unix') }} as range_end_at,
        latest_audit.api_total,
        held.warehouse_fills,
        case
            when latest_audit.api_total > held.warehouse_fills
                then latest_audit.api_total - held.warehouse_fills
            else 0
        end as missing_fills,
        case
            when held.warehouse_fills > latest_audit.api_total
                then held.warehouse_fills - latest_audit.api_total
            else 0
        end as extra_fills,
        latest_audit.api_total <= held.warehouse_fills as is_complete

    from latest_audit
    inner join held on latest_audit.wallet = held.wallet

)

select * from final
