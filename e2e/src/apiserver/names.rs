//! Name and label syntax as the API server validates it (DNS-1123 subdomains and labels,
//! DNS-1035 labels, qualified names for label keys), and `generateName` suffixes.

use rand::Rng;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Returns an error message in the API server's words, or `None` when `s` is valid.
pub fn check_dns1123_label(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > DNS1123_LABEL_MAX {
        return Some(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let ok = is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-');
    (!ok).then(|| {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
    })
}

pub fn check_dns1123_subdomain(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > DNS1123_SUBDOMAIN_MAX {
        return Some(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let ok = s.split('.').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && is_alnum_lower(b[0])
            && is_alnum_lower(b[b.len() - 1])
            && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
    });
    (!ok).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
    })
}

pub fn check_dns1035_label(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > DNS1123_LABEL_MAX {
        return Some(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let ok = b[0].is_ascii_lowercase()
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-');
    (!ok).then(|| {
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string()
    })
}

/// Path-segment names (RBAC roles, for example `system:controller`) only exclude `/`, `%`,
/// `.` and `..`.
pub fn check_path_segment_name(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("name must not be empty".into());
    }
    if s == "." || s == ".." {
        return Some(format!("may not be '{s}'"));
    }
    if s.contains('/') || s.contains('%') {
        return Some("may not contain '/' or '%'".into());
    }
    None
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label or annotation key: `[prefix/]name`.
pub fn check_qualified_name(s: &str) -> Option<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(msg) = check_dns1123_subdomain(p) {
            return Some(format!("prefix part {msg}"));
        }
    }
    if !is_name_part(name) {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into());
    }
    None
}

pub fn check_label_value(s: &str) -> Option<String> {
    if s.is_empty() || is_name_part(s) {
        None
    } else {
        Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into())
    }
}

const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const GENERATED_SUFFIX_LEN: usize = 5;
const MAX_GENERATE_NAME_PREFIX: usize = 63 - GENERATED_SUFFIX_LEN;

/// `generateName` + five random characters from the API server's alphabet (no vowels, no
/// look-alike digits), with the prefix truncated as the server does.
pub fn generate_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut name: String = prefix.chars().take(MAX_GENERATE_NAME_PREFIX).collect();
    for _ in 0..GENERATED_SUFFIX_LEN {
        name.push(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(check_dns1123_label("web-1").is_none());
        assert!(check_dns1123_label("1web").is_none());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check_dns1123_label(bad).is_some(), "{bad}");
        }
        assert!(check_dns1035_label("web").is_none());
        assert!(check_dns1035_label("1web").is_some());
    }

    #[test]
    fn subdomains() {
        assert!(check_dns1123_subdomain("ipaddresspools.ironlb.io").is_none());
        for bad in ["", "a..b", ".a", "a.", "A.b", &"a".repeat(254)] {
            assert!(check_dns1123_subdomain(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn qualified_names_and_values() {
        assert!(check_qualified_name("app").is_none());
        assert!(check_qualified_name("ironlb.io/node").is_none());
        assert!(check_qualified_name("app.kubernetes.io/name").is_none());
        for bad in ["", "/x", "a/b/c", "Bad_/x", "x/", "-x", "ironlb.io/"] {
            assert!(check_qualified_name(bad).is_some(), "{bad}");
        }
        assert!(check_label_value("").is_none());
        assert!(check_label_value("v1.2_3").is_none());
        assert!(check_label_value("a b").is_some());
        assert!(check_label_value(&"a".repeat(64)).is_some());
    }

    #[test]
    fn generated_names_keep_the_prefix_and_add_five_characters() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|c| SUFFIX_ALPHABET.contains(&c)));
        assert_eq!(generate_name(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn path_segment_names() {
        assert!(check_path_segment_name("system:controller:x").is_none());
        assert!(check_path_segment_name("a/b").is_some());
        assert!(check_path_segment_name("..").is_some());
    }
}
