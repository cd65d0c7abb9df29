{#-
    Adapter differences of the project, and only those. Every macro dispatches on the adapter
    (`adapter.dispatch(name, 'tap_dome')`): a `default__` implementation serves DuckDB, a
    `bigquery__` one BigQuery. Models call these macros and stay the same on both.
-#}


{#- A double-precision float type (dbt.type_float() is a 4-byte FLOAT on DuckDB). -#}
{% macro dome_type_double() -%}
    {{ return(adapter.dispatch('dome_type_double', 'tap_dome')()) }}
{%- endmacro %}

{% macro default__dome_type_double() -%}
    {{ return('double') }}
{%- endmacro %}

{% macro bigquery__dome_type_double() -%}
    {{ return('float64') }}
{%- endmacro %}


{#-
    A date-time column as a UTC TIMESTAMP. On DuckDB the raw column may be a TIMESTAMP
    (target-duckdb maps date-time to TIMESTAMP without time zone), a TIMESTAMPTZ or a VARCHAR
    with an offset; going through TIMESTAMPTZ handles all three (naive values are read in the
    session time zone, which the profile sets to UTC). The result is a naive TIMESTAMP in UTC.
    On BigQuery TIMESTAMP is always UTC: a cast covers a STRING column too.
-#}
{% macro dome_utc_timestamp(column) -%}
    {{ return(adapter.dispatch('dome_utc_timestamp', 'tap_dome')(column)) }}
{%- endmacro %}

{% macro default__dome_utc_timestamp(column) -%}
    timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{% macro bigquery__dome_utc_timestamp(column) -%}
    cast({{ column }} as timestamp)
{%- endmacro %}


{#-
    The loader's batch timestamp. On BigQuery the column is passed through untouched: the raw
    table is partitioned on _sdc_batched_at, and a bare column keeps the incremental filter
    of fct_orders prunable down to the new raw partitions.
-#}
{% macro dome_load_timestamp(column) -%}
    {{ return(adapter.dispatch('dome_load_timestamp', 'tap_dome')(column)) }}
{%- endmacro %}

{% macro default__dome_load_timestamp(column) -%}
    {{ dome_utc_timestamp(column) }}
{%- endmacro %}

{% macro bigquery__dome_load_timestamp(column) -%}
    {{ column }}
{%- endmacro %}


{#- Unix seconds (integer) to a UTC TIMESTAMP. -#}
{% macro dome_timestamp_from_unix(column) -%}
    {{ return(adapter.dispatch('dome_timestamp_from_unix', 'tap_dome')(column)) }}
{%- endmacro %}

{% macro default__dome_timestamp_from_unix(column) -%}
    timezone('UTC', to_timestamp(cast({{ column }} as bigint)))
{%- endmacro %}

{% macro bigquery__dome_timestamp_from_unix(column) -%}
    timestamp_seconds(cast({{ column }} as int64))
{%- endmacro %}


{#- A TIMESTAMP expression moved `hours` hours back; stays a TIMESTAMP on both adapters. -#}
{% macro dome_hours_before(expression, hours) -%}
    {{ return(adapter.dispatch('dome_hours_before', 'tap_dome')(expression, hours)) }}
{%- endmacro %}

{% macro default__dome_hours_before(expression, hours) -%}
    ({{ expression }} - interval ({{ hours | int }}) hour)
{%- endmacro %}

{% macro bigquery__dome_hours_before(expression, hours) -%}
    timestamp_sub({{ expression }}, interval {{ hours | int }} hour)
{%- endmacro %}


{#-
    Incremental strategy of fct_orders. BigQuery: insert_overwrite of the day partitions the
    new batch touches (the model emits those partitions complete). DuckDB: delete+insert on
    order_id: every key the batch touches is replaced by the model's row for it, the same
    table BigQuery ends up with from the same model output.
-#}
{% macro dome_incremental_strategy() -%}
    {{ return(adapter.dispatch('dome_incremental_strategy', 'tap_dome')()) }}
{%- endmacro %}

{% macro default__dome_incremental_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro bigquery__dome_incremental_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}


{#- Day partitioning on a DATE column: BigQuery only (DuckDB tables have no partitions). -#}
{% macro dome_partition_by_day(column) -%}
    {{ return(adapter.dispatch('dome_partition_by_day', 'tap_dome')(column)) }}
{%- endmacro %}

{% macro default__dome_partition_by_day(column) -%}
    {{ return(none) }}
{%- endmacro %}

{% macro bigquery__dome_partition_by_day(column) -%}
    {{ return({'field': column, 'data_type': 'date', 'granularity': 'day'}) }}
{%- endmacro %}


{#- Clustering columns: BigQuery only. -#}
{% macro dome_cluster_by(columns) -%}
    {{ return(adapter.dispatch('dome_cluster_by', 'tap_dome')(columns)) }}
{%- endmacro %}

{% macro default__dome_cluster_by(columns) -%}
    {{ return(none) }}
{%- endmacro %}

{% macro bigquery__dome_cluster_by(columns) -%}
    {{ return(columns) }}
{%- endmacro %}
