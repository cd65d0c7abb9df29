{%- set raw_columns = [
    'audit_id', 'wallet', 'audited_at', 'start_time', 'end_time', 'api_total', 'source',
    '_sdc_extracted_at', '_sdc_batched_at',
] -%}

with

source as (

    {{ dome_optional_source('wallet_audits', raw_columns) }}

),

renamed as (

    select
        cast(audit_id as {{ dbt.type_string() }}) as audit_id,
        lower(cast(wallet as {{ dbt.type_string() }})) as wallet,
        {{ dome_utc_timestamp('audited_at') }} as audited_at,
        cast(start_time as {{ dbt.type_bigint() }}) as range_start_unix,
        cast(end_time as {{ dbt.type_bigint() }}) as range_end_unix,
        cast(api_total as {{ dbt.type_bigint() }}) as api_total,
        cast({{ adapter.quote('source') }} as {{ dbt.type_string() }}) as audit_source,
        {{ dome_utc_timestamp('_sdc_extracted_at') }} as extracted_at,
        {{ dome_load_timestamp('_sdc_batched_at') }} as batched_at

    from source

)

select * from renamed
