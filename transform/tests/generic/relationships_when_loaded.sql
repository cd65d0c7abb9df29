{#-
    Like `relationships`, but only once the parent holds rows: fails on every non-null value
    of the column that the parent lacks, unless the parent is empty (its stream is not loaded
    yet, e.g. markets in a project that does not select that stream).
-#}
{% test relationships_when_loaded(model, column_name, to, field) %}

select child.{{ column_name }} as missing_value
from {{ model }} as child
where
    child.{{ column_name }} is not null
    and exists (select 1 from {{ to }})
    and not exists (
        select 1 from {{ to }} as parent
        where parent.{{ field }} = child.{{ column_name }}
    )

{% endtest %}
