{#-
    The slice of raw rows an incremental run of fct_orders (or fct_activity, with
    date_column='occurred_date') reprocesses, as two SQL fragments:

    - `cutoff`: raw rows with batched_at >= cutoff are (re)processed. It is the newest
      batched_at already in fct_orders minus `dome_incremental_margin_hours`.
    - `touched_days`: a parenthesised list of the fill days (filled_date) of those rows. The
      model reads fct_orders only on these days and emits them complete; on BigQuery they are
      the partitions that insert_overwrite replaces.

    In a real run both are computed here, before the model runs, and inlined as literals:
    BigQuery prunes partitions on constant filters only (a subquery filter scans every
    partition), so literals keep both the raw table (partitioned on _sdc_batched_at) and
    fct_orders (partitioned on filled_date) pruned. Freezing the day list also means a row that
    lands in raw while the run is going cannot drag in a day the model does not emit whole.

    In a dbt unit test (and at parse time) there is no table to query: the same values are
    then expressed as subqueries over `this` and the staging model, which the unit test's
    fixtures replace. Both forms select the same rows.
-#}
{% macro dome_incremental_window(staging_relation, date_column='filled_date') %}
    {%- set margin_hours = var('dome_incremental_margin_hours', 3) | int -%}
    {%- set cutoff_sql = dome_hours_before('max(batched_at)', margin_hours) -%}

    {%- if not execute or model.resource_type == 'unit_test' -%}
        {%- set cutoff -%}
            coalesce(
                (select {{ cutoff_sql }} from {{ this }}),
                cast('1970-01-01 00:00:00' as {{ dbt.type_timestamp() }})
            )
        {%- endset -%}
        {%- set touched_days -%}
            (select {{ date_column }} from {{ staging_relation }} where batched_at >= {{ cutoff }})
        {%- endset -%}
        {{ return({'cutoff': cutoff, 'touched_days': touched_days}) }}
    {%- endif -%}

    {%- set cutoff_query -%}
        select cast({{ cutoff_sql }} as {{ dbt.type_string() }}) as cutoff from {{ this }}
    {%- endset -%}
    {%- set cutoff_value = run_query(cutoff_query).columns[0].values()[0] -%}
    {%- if cutoff_value is none -%}
        {%- set cutoff = "cast('1970-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")" -%}
    {%- else -%}
        {%- set cutoff = "cast('" ~ cutoff_value ~ "' as " ~ dbt.type_timestamp() ~ ")" -%}
    {%- endif -%}

    {%- set days_query -%}
        select distinct cast({{ date_column }} as {{ dbt.type_string() }}) as touched_day
        from {{ staging_relation }}
        where batched_at >= {{ cutoff }}
          and {{ date_column }} is not null
        order by 1
    {%- endset -%}
    {%- set days = run_query(days_query).columns[0].values() -%}
    {%- if days | length == 0 -%}
        {%- set touched_days = '(cast(null as date))' -%}
    {%- else -%}
        {%- set literals = [] -%}
        {%- for day in days -%}
            {%- do literals.append("date '" ~ day ~ "'") -%}
        {%- endfor -%}
        {%- set touched_days = '(' ~ literals | join(', ') ~ ')' -%}
    {%- endif -%}
    {%- do log(
        model.name ~ ': reprocessing raw rows batched since ' ~ (cutoff_value or 'the start')
        ~ ' on ' ~ (days | length) ~ ' day(s)',
        info=true
    ) -%}
    {{ return({'cutoff': cutoff, 'touched_days': touched_days}) }}
{% endmacro %}
