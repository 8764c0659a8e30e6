"""How ClickPulse's Kafka clients authenticate and encrypt: TLS and SASL properties from the settings.

The named settings (``CLICKPULSE_KAFKA_SECURITY_PROTOCOL``, ``_SASL_MECHANISM``, ``_SASL_USERNAME``,
``_SASL_PASSWORD``, ``_SSL_CA_LOCATION``) cover Confluent Cloud, MSK SCRAM, Aiven and Redpanda;
``CLICKPULSE_KAFKA_CONFIG`` (a librdkafka properties file, a JSON file, or an inline JSON object) carries
anything else librdkafka understands (client certificates, OAUTHBEARER/OIDC, timeouts). The file comes
first and the named settings override it. The result is checked here, once, when the settings load, so a
wrong combination fails every component at start with the variable to fix instead of a client hanging on a
handshake; ``streaming.kafka_io.client_config`` is the one place that puts it into a client's configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_args

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]
SECURITY_PROTOCOLS: Final = get_args(SecurityProtocol)
SASL_MECHANISMS: Final = get_args(SaslMechanism)
_NEEDS_PASSWORD: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_ALIASES: Final = {"sasl.mechanisms": "sasl.mechanism"}

# Set by ClickPulse per client (delivery semantics, groups, the address): the escape hatch cannot change them.
RESERVED: Final = frozenset(
    {
        "bootstrap.servers",
        "metadata.broker.list",
        "group.id",
        "group.instance.id",
        "enable.idempotence",
        "acks",
        "request.required.acks",
        "transactional.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "isolation.level",
        "partition.assignment.strategy",
    }
)
CONFIG_VARIABLE: Final = "CLICKPULSE_KAFKA_CONFIG"


class KafkaConfigError(ValueError):
    """The Kafka security settings are inconsistent or unreadable; the message names what to fix."""


def read_client_properties(value: str) -> dict[str, Any]:
    """``CLICKPULSE_KAFKA_CONFIG``: an inline JSON object, or the path of a ``.json`` or ``.properties``
    file (``key=value`` lines, ``#`` comments). Values are never echoed in errors: they may be secrets."""
    text = value.strip()
    if text.startswith(("{", "[")):
        return _checked(_json_object(text, "the inline JSON object"), "the inline JSON object")
    path = Path(text).expanduser()
    if not path.is_file():
        raise KafkaConfigError(f"{CONFIG_VARIABLE}: {path} is not a file (nor an inline JSON object)")
    content = path.read_text()
    if path.suffix == ".json":
        return _checked(_json_object(content, str(path)), str(path))
    return _checked(_properties(content, path), str(path))


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KafkaConfigError(f"{CONFIG_VARIABLE}: {where} is not valid JSON (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise KafkaConfigError(f"{CONFIG_VARIABLE}: {where} must be a JSON object of librdkafka properties")
    return data


def _properties(content: str, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise KafkaConfigError(f"{CONFIG_VARIABLE}: {path} line {number} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _checked(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key, key)
        if not name or name != name.strip() or " " in name:
            raise KafkaConfigError(f"{CONFIG_VARIABLE}: {where} has a malformed property name {key!r}")
        if name in RESERVED:
            hint = " (use KAFKA_BOOTSTRAP_SERVERS)" if "servers" in name or "broker" in name else ""
            raise KafkaConfigError(
                f"{CONFIG_VARIABLE}: {where} sets {key!r}, which ClickPulse sets itself per client{hint}"
            )
        if isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            raise KafkaConfigError(f"{CONFIG_VARIABLE}: {where}: {key!r} must be a string, number or boolean")
    return out


def security_properties(
    *,
    protocol: str | None,
    mechanism: str | None,
    username: str | None,
    password: str | None,
    ca_location: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The librdkafka properties for one set of settings (``extra`` first, the named ones over it),
    checked for the mistakes that would otherwise show up as a client retrying forever."""
    props: dict[str, Any] = dict(extra or {})
    named = {
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": username,
        "sasl.password": password,
        "ssl.ca.location": ca_location,
    }
    props.update({key: value for key, value in named.items() if value is not None})
    _check(props)
    return props


def _check(props: Mapping[str, Any]) -> None:
    protocol = str(props.get("security.protocol", "PLAINTEXT")).upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise KafkaConfigError(f"security.protocol must be one of {', '.join(SECURITY_PROTOCOLS)}")
    sasl = protocol.startswith("SASL_")
    mechanism = props.get("sasl.mechanism")
    sasl_keys = sorted(k for k in props if k.startswith("sasl.") and k != "sasl.mechanism")
    if not sasl and (mechanism is not None or sasl_keys):
        raise KafkaConfigError(
            f"SASL settings ({', '.join(sorted({*sasl_keys, *(['sasl.mechanism'] if mechanism else [])}))}) "
            f"need CLICKPULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT), not {protocol}"
        )
    if sasl:
        if mechanism is None:
            raise KafkaConfigError(
                f"security.protocol={protocol} needs CLICKPULSE_KAFKA_SASL_MECHANISM "
                f"({', '.join(SASL_MECHANISMS)}; PLAIN for Confluent Cloud API keys, SCRAM-SHA-512 for MSK)"
            )
        mechanism = str(mechanism).upper()
        if mechanism not in SASL_MECHANISMS:
            raise KafkaConfigError(f"sasl.mechanism must be one of {', '.join(SASL_MECHANISMS)}")
        if mechanism in _NEEDS_PASSWORD:
            missing = [
                variable
                for key, variable in (
                    ("sasl.username", "CLICKPULSE_KAFKA_SASL_USERNAME"),
                    ("sasl.password", "CLICKPULSE_KAFKA_SASL_PASSWORD"),
                )
                if not props.get(key)
            ]
            if missing:
                raise KafkaConfigError(f"sasl.mechanism={mechanism} needs {' and '.join(missing)}")
    ca = props.get("ssl.ca.location")
    if ca is not None:
        if not protocol.endswith("SSL"):
            raise KafkaConfigError(
                f"CLICKPULSE_KAFKA_SSL_CA_LOCATION is set but security.protocol is {protocol} "
                "(use SSL or SASL_SSL)"
            )
        if str(ca) != "probe" and not Path(str(ca)).expanduser().exists():
            raise KafkaConfigError(f"ssl.ca.location {ca} does not exist (a PEM file or folder, or 'probe')")
