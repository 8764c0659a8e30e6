{#- Weight of one event in trending scores and interaction strength, from the trending_weight_* vars. -#}
{% macro event_weight(event_type_column) -%}
    case {{ event_type_column }}
    {%- for event_type in ['impression', 'click', 'conversion'] %}
        {%- set weight = var('trending_weight_' ~ event_type) | float %} when '{{ event_type }}'
        {#- #} then cast({{ weight }} as {{ float_type() }})
    {%- endfor %} else cast(0 as {{ float_type() }}) end
{%- endmacro %}

{#-
    One event's contribution to a trending score as of as_of_expr:
    weight(event_type) * 0.5 ^ (age_hours / trending_half_life_hours), and 0 for events after as_of.
-#}
{% macro trending_contribution(event_type_column, event_time_column, as_of_expr) -%}
    {%- set age_hours = seconds_between(event_time_column, as_of_expr) ~ ' / 3600.0' -%}
    {%- set half_life_hours = var('trending_half_life_hours') | float -%}
    {%- set half_life_expr = 'cast(' ~ half_life_hours ~ ' as ' ~ float_type() ~ ')' -%}
    case when {{ event_time_column }} <= {{ as_of_expr }}
    {#- #} then ({{ event_weight(event_type_column) }}) * {{ half_life_decay(age_hours, half_life_expr) }}
    {#- #} else cast(0 as {{ float_type() }}) end
{%- endmacro %}

{#- The trending reference time: var('as_of') if set, else the latest event_time of the relation or CTE. -#}
{% macro trending_as_of(events_relation, event_time_column='event_time') -%}
    {%- if var('as_of', none) -%}
        {{ timestamp_literal(var('as_of')) }}
    {%- else -%}
        (select max({{ event_time_column }}) from {{ events_relation }})
    {%- endif -%}
{%- endmacro %}
