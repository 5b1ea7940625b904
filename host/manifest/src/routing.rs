//! HTTP routes as Spin defines them: an exact path (`/health`) or a prefix with
//! a trailing wildcard (`/classify/...`, which matches `/classify` and everything
//! under it). An exact route beats a wildcard, and a longer prefix beats a shorter one.

/// A `route` of a `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePattern {
    Exact(String),
    /// The prefix without the trailing `/...`; `""` for the catch-all `/...`.
    Wildcard(String),
}

/// How a request path matched a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// Index of the route in the router (and the manifest).
    pub index: usize,
    /// The route as written in the manifest, e.g. `/classify/...`.
    pub route: &'a str,
    /// The part of the path the route matched, e.g. `/classify`.
    pub base: &'a str,
    /// The rest of the path after `base` (Spin's `spin-path-info`), e.g. `/cat`.
    pub path_info: &'a str,
}

impl RoutePattern {
    pub fn parse(route: &str) -> Result<Self, String> {
        if !route.starts_with('/') {
            return Err(format!("route {route:?} must start with '/'"));
        }
        let pattern = match route.strip_suffix("/...") {
            Some(prefix) => RoutePattern::Wildcard(prefix.trim_end_matches('/').to_string()),
            None => RoutePattern::Exact(normalise(route).to_string()),
        };
        let path = match &pattern {
            RoutePattern::Exact(p) | RoutePattern::Wildcard(p) => p,
        };
        if path.contains("...") || path.contains(['?', '#', '*']) {
            return Err(format!(
                "route {route:?}: a wildcard may only end a route, as in \"/prefix/...\""
            ));
        }
        Ok(pattern)
    }

    /// The route as Spin writes it.
    pub fn as_route(&self) -> String {
        match self {
            RoutePattern::Exact(p) => p.clone(),
            RoutePattern::Wildcard(p) => format!("{p}/..."),
        }
    }

    fn matches<'p>(&self, path: &'p str) -> Option<(&'p str, &'p str)> {
        match self {
            RoutePattern::Exact(p) => (normalise(path) == p).then_some((path, "")),
            RoutePattern::Wildcard(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (&path[..prefix.len()], rest))
            }
        }
    }

    /// Orders candidates: exact routes first, then longer prefixes.
    fn specificity(&self) -> (bool, usize) {
        match self {
            RoutePattern::Exact(p) => (true, p.len()),
            RoutePattern::Wildcard(p) => (false, p.len()),
        }
    }
}

/// A trailing slash does not make a different exact route.
fn normalise(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

/// Finds the route of a request path.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(RoutePattern, String)>,
}

impl Router {
    pub fn new(patterns: impl IntoIterator<Item = RoutePattern>) -> Self {
        Self {
            routes: patterns
                .into_iter()
                .map(|p| {
                    let route = p.as_route();
                    (p, route)
                })
                .collect(),
        }
    }

    /// The most specific route matching `path`, if any.
    pub fn route<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(index, (pattern, route))| {
                let (base, path_info) = pattern.matches(path)?;
                Some((
                    pattern.specificity(),
                    RouteMatch {
                        index,
                        route,
                        base,
                        path_info,
                    },
                ))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        Router::new(routes.iter().map(|r| RoutePattern::parse(r).unwrap()))
    }

    #[test]
    fn wildcard_matches_prefix_and_below_only() {
        let r = router(&["/classify/..."]);
        let m = r.route("/classify/efficientnet-lite0").unwrap();
        assert_eq!(
            (m.base, m.path_info, m.route),
            ("/classify", "/efficientnet-lite0", "/classify/...")
        );
        assert_eq!(r.route("/classify").unwrap().path_info, "");
        assert!(r.route("/classifyx").is_none());
        assert!(r.route("/other").is_none());
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&["/...", "/a/...", "/a/b/...", "/a/b"]);
        assert_eq!(r.route("/a/b").unwrap().index, 3);
        assert_eq!(r.route("/a/b/").unwrap().index, 3);
        assert_eq!(r.route("/a/b/c").unwrap().index, 2);
        assert_eq!(r.route("/a/x").unwrap().index, 1);
        assert_eq!(r.route("/zzz").unwrap().index, 0);
    }

    #[test]
    fn bad_routes_are_rejected() {
        assert!(RoutePattern::parse("classify").is_err());
        assert!(RoutePattern::parse("/a/.../b").is_err());
        assert!(RoutePattern::parse("/a/*").is_err());
    }
}
