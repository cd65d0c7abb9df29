{#-
    Fails when any audited wallet has fewer fills in fct_orders than the API counted in the
    audited range (see wallet_completeness). Severity: var dome_completeness_severity (env
    DOME_COMPLETENESS_SEVERITY), `error` by default; `warn` reports without failing the build.
-#}
{{ config(severity=var('dome_completeness_severity')) }}

select
    wallet,
    audited_at,
    range_start_at,
    range_end_at,
    api_total,
    warehouse_fills,
    missing_fills
from {{ ref('wallet_completeness') }}
where missing_fills > 0
