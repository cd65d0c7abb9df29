{#-
    The raw tables of the streams a project may not load (markets, activity, wallet_audits):
    `dome_optional_source(table, columns)` selects from source('dome', table) when the loader
    has created that table, and otherwise from an empty relation with the same column names
    (strings, which the staging casts turn into the right types; the loader's `_sdc_*_at`
    columns TIMESTAMPs, as the loaders write them). So a project that does
    not select a stream in Meltano, or a warehouse loaded before the stream existed, still
    builds: the models over it are empty and their tests pass. In a unit test and at parse
    time it is always the source (unit tests replace it with their fixtures).
-#}
{% macro dome_optional_source(table, columns) %}
    {%- set relation = source('dome', table) -%}
    {%- if not execute or model.resource_type == 'unit_test' -%}
        select * from {{ relation }}
    {%- else -%}
        {%- set found = adapter.get_relation(
            database=relation.database, schema=relation.schema, identifier=relation.identifier
        ) -%}
        {%- if found is not none -%}
            select * from {{ relation }}
        {%- else -%}
            {%- do log(model.name ~ ': raw table ' ~ relation ~ ' does not exist yet; empty', info=true) -%}
            select
            {%- for column in columns %}
                {%- set type = dbt.type_timestamp() if column.startswith('_sdc_') and column.endswith('_at') else dbt.type_string() %}
                cast(null as {{ type }}) as {{ adapter.quote(column) }}{{ ',' if not loop.last }}
            {%- endfor %}
            from (select 1 as one) as no_rows
            where 1 = 0
        {%- endif -%}
    {%- endif -%}
{% endmacro %}


{#-
    The rank of one copy among the copies of a row read several times (raw is append-only):
    1 for the most recently loaded copy, highest batched_at, then highest extracted_at, then
    the smallest content in column order, a total order, so the pick is the same on every run,
    on both adapters, incremental or full refresh. `columns` are the model's columns; `key`
    the identity the copies share. fct_orders, fct_activity and dim_markets use it.
-#}
{% macro dome_copy_rank(key, columns) -%}
    {%- set tiebreak = [] -%}
    {%- for column in columns if column not in [key, 'extracted_at', 'batched_at'] -%}
        {%- do tiebreak.append(column ~ ' asc nulls last') -%}
    {%- endfor -%}
    row_number() over (
        partition by {{ key }}
        order by
            batched_at desc nulls last,
            extracted_at desc nulls last{{ ',' if tiebreak }}
            {{ tiebreak | join(', ') }}
    )
{%- endmacro %}
