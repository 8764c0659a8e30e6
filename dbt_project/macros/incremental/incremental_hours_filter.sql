{#-
    Predicate on an hour-truncated column (event_hour) choosing the event hours an incremental run
    rebuilds. Every hour it selects is rebuilt from all of its events, so merging on the grain key
    replaces whole hours and never leaves a partially counted one.

    - window_start set (Dagster partition runs): hours >= floor_hour(window_start - lateness_minutes)
    - otherwise: hours >= floor_hour(max(hour_column) already in {{ this }} - lateness_minutes),
      or every hour when the table is still empty
    - window_end set: additionally hours < window_end

    Events whose event_time lies before that lower bound when they arrive (later than the allowed
    lateness) are not counted by incremental runs; a `--full-refresh` or a wider window picks them up.
-#}
{% macro incremental_hours_filter(hour_column='event_hour') -%}
    {%- set lateness_minutes = var('lateness_minutes') | int -%}
    {%- set window_start = parse_utc_timestamp(var('window_start', none)) -%}
    {%- set window_end = parse_utc_timestamp(var('window_end', none)) -%}
    {%- if window_start is not none -%}
        {%- set lower_bound = window_start - modules.datetime.timedelta(minutes=lateness_minutes) -%}
        {{ hour_column }} >= {{ timestamp_literal(lower_bound.replace(minute=0, second=0, microsecond=0)) }}
    {%- else -%}
        {{ hour_column }} >= coalesce(
            (
                select {{ hour_floor(timestamp_add_minutes('max(' ~ hour_column ~ ')', -lateness_minutes)) }}
                from {{ this }}
            ),
            {{ timestamp_literal('1970-01-01') }}
        )
    {%- endif -%}
    {%- if window_end is not none %}
        and {{ hour_column }} < {{ timestamp_literal(window_end) }}
    {%- endif -%}
{%- endmacro %}
