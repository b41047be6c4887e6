//! The validation the API server does for us: bounds, patterns and CEL rules that the CRD types
//! put into their OpenAPI schemas.
//!
//! Everything here must install on Kubernetes 1.27: CEL rules use only the standard library
//! (`size`, `has`, `all`, `matches`, ...) and carry only `rule` and `message`, never
//! `messageExpression`, `reason` or `fieldPath`, which older API servers do not know.
//!
//! Every list and string has an upper bound. The bounds keep objects reasonable and keep the
//! API server's estimate of each CEL rule's cost far below its limit.

use schemars::Schema;
use serde_json::{Map, Value, json};

use crate::names::{LABEL_KEY_MAX, LABEL_KEY_PATTERN, LABEL_NAME_MAX, LABEL_VALUE_PATTERN};

/// Most entries in `IPAddressPool.spec.addresses`.
pub const MAX_ADDRESSES: u32 = 1024;
/// Longest address entry: two IPv6 addresses in their longest form (45 characters each,
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`) joined by `-`.
pub const MAX_ADDRESS_LEN: u32 = 91;
/// Longest single IP address in text form.
pub const MAX_IP_LEN: u32 = 45;
/// Most entries in a list of names (namespaces, pools).
pub const MAX_NAMES: u32 = 256;
/// Most interfaces in an L2Advertisement or ServiceL2Status.
pub const MAX_INTERFACES: u32 = 32;
/// Most selectors in one selector-list field.
pub const MAX_SELECTORS: u32 = 16;
/// Most `matchLabels` pairs in one selector.
pub const MAX_MATCH_LABELS: u32 = 32;
/// Most `matchExpressions` in one selector.
pub const MAX_MATCH_EXPRESSIONS: u32 = 16;
/// Most values in one `matchExpressions` requirement.
pub const MAX_SELECTOR_VALUES: u32 = 64;
/// Most conditions in a status.
pub const MAX_CONDITIONS: u32 = 16;

const IPV4: &str = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}";
// IPv6 is only shaped here (hex digits, colons, dots for an embedded IPv4, at least one colon);
// the controller parses it exactly.
const IPV6: &str = "[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*";
const IPV4_PREFIX: &str = "([0-9]|[12][0-9]|3[0-2])";
const IPV6_PREFIX: &str = "([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])";

/// Pattern of an `IPAddressPool.spec.addresses` entry: an IPv4 address, CIDR or range, or an
/// IPv6 one. It rejects mixed-family ranges, IPv4 octets above 255 and prefix lengths beyond
/// the family's width. What it cannot express (start after end, host bits set, a malformed
/// IPv6 address) the controller reports in the pool's `Invalid` condition.
pub fn address_entry_pattern() -> String {
    format!("^({IPV4}(/{IPV4_PREFIX}|-{IPV4})?|{IPV6}(/{IPV6_PREFIX}|-{IPV6})?)$")
}

/// Pattern of a single IP address (IPv4 exactly, IPv6 by shape).
pub fn ip_pattern() -> String {
    format!("^({IPV4}|{IPV6})$")
}

/// CEL rule for a list of at most two IPs: not two of one family.
pub const ONE_IP_PER_FAMILY_RULE: &str =
    "size(self) < 2 || (self[0].contains(':') != self[1].contains(':'))";

/// CEL rule for one `matchExpressions` requirement: values go with `In`/`NotIn` only.
pub const REQUIREMENT_VALUES_RULE: &str = "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)";
const REQUIREMENT_VALUES_MESSAGE: &str =
    "operators In and NotIn need at least one value; Exists and DoesNotExist take none";

/// CEL rule for an interface name; the pattern already restricts the characters.
pub const INTERFACE_NAME_RULE: &str = "self.all(i, i != '.' && i != '..')";

/// Transform for `Vec<metav1.LabelSelector>` fields: bounds every part of each selector and
/// checks operators, values, label keys and label values.
///
/// Keys of `matchLabels` are not checked by the schema: a pattern cannot apply to map keys and a
/// CEL rule over them would be costly. The controller reports them.
pub(crate) fn selector_list(schema: &mut Schema) {
    let Some(list) = schema.as_object_mut() else {
        return;
    };
    list.insert("maxItems".into(), json!(MAX_SELECTORS));
    let Some(selector) = object_at(list, &["items", "properties"]) else {
        return;
    };
    if let Some(match_labels) = object_at(selector, &["matchLabels"]) {
        match_labels.insert("maxProperties".into(), json!(MAX_MATCH_LABELS));
        match_labels.insert(
            "additionalProperties".into(),
            string_schema(LABEL_NAME_MAX as u32, LABEL_VALUE_PATTERN),
        );
    }
    let Some(expressions) = object_at(selector, &["matchExpressions"]) else {
        return;
    };
    expressions.insert("maxItems".into(), json!(MAX_MATCH_EXPRESSIONS));
    let Some(requirement) = object_at(expressions, &["items"]) else {
        return;
    };
    add_rule(
        requirement,
        REQUIREMENT_VALUES_RULE,
        REQUIREMENT_VALUES_MESSAGE,
    );
    let Some(fields) = object_at(requirement, &["properties"]) else {
        return;
    };
    if let Some(key) = object_at(fields, &["key"]) {
        key.insert("maxLength".into(), json!(LABEL_KEY_MAX));
        key.insert("pattern".into(), json!(LABEL_KEY_PATTERN));
    }
    if let Some(operator) = object_at(fields, &["operator"]) {
        operator.insert(
            "enum".into(),
            json!(["In", "NotIn", "Exists", "DoesNotExist"]),
        );
    }
    if let Some(values) = object_at(fields, &["values"]) {
        values.insert("maxItems".into(), json!(MAX_SELECTOR_VALUES));
        values.insert(
            "items".into(),
            string_schema(LABEL_NAME_MAX as u32, LABEL_VALUE_PATTERN),
        );
    }
}

fn string_schema(max_length: u32, pattern: &str) -> Value {
    json!({"type": "string", "maxLength": max_length, "pattern": pattern})
}

fn add_rule(schema: &mut Map<String, Value>, rule: &str, message: &str) {
    let entry = json!({"rule": rule, "message": message});
    match schema
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]))
    {
        Value::Array(rules) => rules.push(entry),
        other => *other = json!([entry]),
    }
}

fn object_at<'a>(
    schema: &'a mut Map<String, Value>,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut current = schema;
    for key in path {
        current = current.get_mut(*key)?.as_object_mut()?;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{AddressRange, parse_address_entry};
    use proptest::prelude::*;
    use regex::Regex;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn schema_accepts_entry(entry: &str) -> bool {
        entry.chars().count() <= MAX_ADDRESS_LEN as usize
            && Regex::new(&address_entry_pattern())
                .unwrap()
                .is_match(entry)
    }

    #[test]
    fn address_pattern_accepts_the_documented_forms() {
        for entry in [
            "192.0.2.0/24",
            "192.0.2.7",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "192.0.2.10-192.0.2.20",
            "2001:db8::/64",
            "2001:DB8::1-2001:db8::ff",
            "::/0",
            "::ffff:192.0.2.1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255-ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ] {
            assert!(schema_accepts_entry(entry), "{entry}");
            assert!(parse_address_entry(entry).is_ok(), "{entry}");
        }
    }

    #[test]
    fn address_pattern_rejects_malformed_entries() {
        for entry in [
            "",
            "banana",
            " 192.0.2.1",
            "192.0.2.1 ",
            "192.0.2.1 - 192.0.2.5",
            "192.0.2.256",
            "192.0.2",
            "192.0.2.1.5",
            "192.0.2.01",
            "192.0.2.0/33",
            "192.0.2.0/",
            "192.0.2.0/+24",
            "192.0.2.0/24/8",
            "2001:db8::/129",
            "2001:db8::/",
            "192.0.2.1-2001:db8::1",
            "2001:db8::1-192.0.2.1",
            "192.0.2.1-",
            "192.0.2.1-192.0.2.2-192.0.2.3",
            "2001:db8::g",
            "fe80::1%eth0",
        ] {
            assert!(!schema_accepts_entry(entry), "{entry:?}");
            assert!(parse_address_entry(entry).is_err(), "{entry:?}");
        }
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        ]
    }

    proptest! {
        // Whatever the controller accepts in its written form, the API server must accept too;
        // otherwise a valid pool could not be created.
        #[test]
        fn schema_accepts_every_range_the_parser_accepts(a in any_ip(), b in any_ip(), prefix in 0u8..=128) {
            let (lo, hi) = if crate::address::ip_to_u128(a) <= crate::address::ip_to_u128(b) { (a, b) } else { (b, a) };
            if let Ok(range) = AddressRange::new(lo, hi) {
                let written = range.to_string();
                prop_assert!(schema_accepts_entry(&written), "{}", written);
            }
            let max = if a.is_ipv4() { 32 } else { 128 };
            let cidr = format!("{a}/{}", prefix.min(max));
            if parse_address_entry(&cidr).is_ok() {
                prop_assert!(schema_accepts_entry(&cidr), "{}", cidr);
            }
        }

        #[test]
        fn ip_pattern_accepts_every_ip(ip in any_ip()) {
            let text = ip.to_string();
            prop_assert!(text.len() <= MAX_IP_LEN as usize);
            prop_assert!(Regex::new(&ip_pattern()).unwrap().is_match(&text), "{}", text);
        }
    }
}
