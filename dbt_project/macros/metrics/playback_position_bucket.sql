{#-
    Label of the playback position bucket a position (in seconds) falls in:
    [0, 60) '0-60s', [60, 300) '1-5min', [300, 1200) '5-20min', >= 1200 '20min+',
    and 'unknown' when the position is null or negative (e.g. impressions outside the player).
-#}
{% macro playback_position_bucket(position_seconds_column) -%}
    case
        when {{ position_seconds_column }} is null or {{ position_seconds_column }} < 0 then 'unknown'
        when {{ position_seconds_column }} < 60 then '0-60s'
        when {{ position_seconds_column }} < 300 then '1-5min'
        when {{ position_seconds_column }} < 1200 then '5-20min'
        else '20min+'
    end
{%- endmacro %}
