//! Which Services are ironlb's: the `loadBalancerClass` rule both binaries apply.
//!
//! A Service is handled when it is `type: LoadBalancer` and its `spec.loadBalancerClass` equals
//! our class, or it has no class and `--ignore-unclassed` is off. Services of any other class
//! are never touched, even to release addresses they were given under another class.

use k8s_openapi::api::core::v1::Service;

use crate::names::{NameError, check_label_key};

/// The class ironlb answers to unless `--lb-class` says otherwise.
pub const DEFAULT_LB_CLASS: &str = "ironlb.io/ironlb";

/// The `spec.type` of a load-balancer Service.
pub const LOAD_BALANCER_TYPE: &str = "LoadBalancer";

/// The class rule, built once from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassFilter {
    class: String,
    ignore_unclassed: bool,
}

impl ClassFilter {
    /// Builds the rule for `--lb-class` and `--ignore-unclassed`. The class must be a label-key
    /// style name, as the API server requires of `loadBalancerClass`.
    pub fn new(class: &str, ignore_unclassed: bool) -> Result<ClassFilter, NameError> {
        check_label_key(class)?;
        Ok(ClassFilter {
            class: class.to_string(),
            ignore_unclassed,
        })
    }

    pub fn class(&self) -> &str {
        &self.class
    }

    /// True when a Service whose `spec.loadBalancerClass` is `class` is ours. An empty class
    /// (which the API server does not allow) counts as no class.
    pub fn accepts_class(&self, class: Option<&str>) -> bool {
        match class.filter(|c| !c.is_empty()) {
            Some(c) => c == self.class,
            None => !self.ignore_unclassed,
        }
    }

    /// True when `service` is a LoadBalancer Service of our class.
    pub fn handles(&self, service: &Service) -> bool {
        is_load_balancer(service) && self.accepts_class(load_balancer_class(service))
    }
}

impl Default for ClassFilter {
    /// The default class, with unclassed Services handled.
    fn default() -> Self {
        ClassFilter {
            class: DEFAULT_LB_CLASS.to_string(),
            ignore_unclassed: false,
        }
    }
}

/// True when the Service is `type: LoadBalancer`.
pub fn is_load_balancer(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == LOAD_BALANCER_TYPE)
}

/// The Service's `spec.loadBalancerClass`.
pub fn load_balancer_class(service: &Service) -> Option<&str> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;

    fn mk_service(type_: Option<&str>, class: Option<&str>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: type_.map(str::to_string),
                load_balancer_class: class.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn class_rule() {
        let handles_unclassed = ClassFilter::new(DEFAULT_LB_CLASS, false).unwrap();
        let ignores_unclassed = ClassFilter::new(DEFAULT_LB_CLASS, true).unwrap();
        let cases = [
            (Some("ironlb.io/ironlb"), true, true),
            (None, true, false),
            (Some(""), true, false),
            (Some("metallb.io/metallb"), false, false),
            (Some("ironlb.io/other"), false, false),
            (Some("IRONLB.IO/IRONLB"), false, false),
        ];
        for (class, unclassed_on, unclassed_off) in cases {
            assert_eq!(
                handles_unclassed.accepts_class(class),
                unclassed_on,
                "{class:?}"
            );
            assert_eq!(
                ignores_unclassed.accepts_class(class),
                unclassed_off,
                "{class:?}"
            );
        }
    }

    #[test]
    fn custom_class() {
        let filter = ClassFilter::new("example.com/lb", true).unwrap();
        assert_eq!(filter.class(), "example.com/lb");
        assert!(filter.accepts_class(Some("example.com/lb")));
        assert!(!filter.accepts_class(Some(DEFAULT_LB_CLASS)));
    }

    #[test]
    fn malformed_class_flags_are_rejected() {
        for bad in ["", "with space", "/x", "a/b/c", "-x"] {
            assert!(ClassFilter::new(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_load_balancer_services_are_handled() {
        let filter = ClassFilter::default();
        assert!(filter.handles(&mk_service(Some("LoadBalancer"), None)));
        assert!(filter.handles(&mk_service(Some("LoadBalancer"), Some(DEFAULT_LB_CLASS))));
        assert!(!filter.handles(&mk_service(Some("LoadBalancer"), Some("other.io/lb"))));
        assert!(!filter.handles(&mk_service(Some("NodePort"), None)));
        assert!(!filter.handles(&mk_service(Some("ClusterIP"), Some(DEFAULT_LB_CLASS))));
        assert!(
            !filter.handles(&mk_service(None, None)),
            "type defaults to ClusterIP"
        );
        assert!(!filter.handles(&Service::default()));
        assert!(!filter.handles(&mk_service(Some("loadbalancer"), None)));
    }
}
