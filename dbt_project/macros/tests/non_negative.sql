{#- Fails with one row per negative value of the column (nulls pass; test not_null separately). -#}
{% test non_negative(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0

{% endtest %}
