{#-
    Fails with one row per row of the model for which the boolean SQL expression is not true.
    On a column, the expression is applied to it: `expression: "> 0"` tests `column > 0`.
-#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not coalesce({{ column_name ~ ' ' if column_name }}{{ expression }}, false)

{% endtest %}
