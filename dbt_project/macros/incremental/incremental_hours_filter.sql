{#-
    Predicate on an hour-truncated column (event_hour) choosing the event hours an incremental run
    rebuilds. Every hour it selects is rebuilt from all of its events, so merging on the grain key
    replaces whole hours and never leaves a partially counted one.

    - var window_start set (Dagster partition runs):
      hours >= floor_hour(window_start - lateness_minutes)
    - otherwise: hours >= floor_hour(latest hour already in {{ this }} - lateness_minutes),
      or every hour while the table is empty
    - var window_end set: additionally hours < window_end

    Events whose event_time lies before that lower bound when they arrive (later than the allowed
    lateness) are not counted by incremental runs; a `--full-refresh` or a wider window picks them up.
-#}
{% macro incremental_hours_filter(hour_column='event_hour') -%}
    {%- set lookback = -(var('lateness_minutes') | int) -%}
    {%- if var('window_start', none) -%}
        {%- set window_start = timestamp_literal(var('window_start')) -%}
        {{ hour_column }} >= {{ hour_floor(timestamp_add_minutes(window_start, lookback)) }}
    {%- else -%}
        {%- set loaded_hour = 'max(' ~ hour_column ~ ')' -%}
        {{ hour_column }} >= coalesce(
        {#- #}(select {{ hour_floor(timestamp_add_minutes(loaded_hour, lookback)) }} from {{ this }}),
        {#- #} {{ timestamp_literal('1970-01-01') }})
    {%- endif -%}
    {%- if var('window_end', none) %} and {{ hour_column }} < {{ timestamp_literal(var('window_end')) }}
    {%- endif -%}
{%- endmacro %}
