//! HTTP routes as Spin defines them: an exact path (`/health`), a prefix with
//! a trailing wildcard (`/classify/...`, which matches `/classify` and
//! everything under it), and named segments (`/users/:id/...`, whose value
//! a component reads from the `spin-path-match-id` header). An exact route
//! beats a wildcard, a literal segment beats a named one, and a longer prefix
//! beats a shorter one.

/// A `route` of a `[[trigger.http]]` entry, joined to the application's base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    segments: Vec<Segment>,
    /// Ends in `/...`: matches the prefix and everything below it.
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `:name`: any one segment.
    Param(String),
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
    /// The values of named segments (`:id`), in the route's order.
    pub params: Vec<(&'a str, &'a str)>,
}

impl RoutePattern {
    pub fn parse(route: &str) -> Result<Self, String> {
        Self::parse_under("/", route)
    }

    /// Parses `route` under the application's `base` path (Spin's
    /// `[application.trigger.http] base`), as Spin joins them: `/api` and
    /// `users/...` make `/api/users/...`.
    pub fn parse_under(base: &str, route: &str) -> Result<Self, String> {
        if !base.starts_with('/') {
            return Err(format!("base {base:?} must start with '/'"));
        }
        let joined = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            route.trim_start_matches('/')
        );
        let (path, wildcard) = match joined.strip_suffix("/...") {
            Some(prefix) => (prefix.to_string(), true),
            None if joined.ends_with("...") => (joined.trim_end_matches("...").to_string(), true),
            None => (joined, false),
        };
        if path.contains("...") || path.contains(['?', '#', '*']) {
            return Err(format!(
                "route {route:?}: a wildcard may only end a route, as in \"/prefix/...\""
            ));
        }
        let mut segments = Vec::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            segments.push(match segment.strip_prefix(':') {
                Some("") => return Err(format!("route {route:?}: ':' must name its segment")),
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(segment.to_string()),
            });
        }
        Ok(Self { segments, wildcard })
    }

    /// The route as Spin writes it.
    pub fn as_route(&self) -> String {
        let mut route = String::new();
        for segment in &self.segments {
            route.push('/');
            match segment {
                Segment::Literal(s) => route.push_str(s),
                Segment::Param(name) => {
                    route.push(':');
                    route.push_str(name);
                }
            }
        }
        match (self.wildcard, route.is_empty()) {
            (true, _) => route.push_str("/..."),
            (false, true) => route.push('/'),
            (false, false) => {}
        }
        route
    }

    /// The matched prefix, the rest and the named segments' values.
    fn matches<'s, 'p>(&'s self, path: &'p str) -> Option<Matched<'s, 'p>> {
        let mut rest = path;
        let mut params = Vec::new();
        for segment in &self.segments {
            let trimmed = rest.strip_prefix('/')?;
            let end = trimmed.find('/').unwrap_or(trimmed.len());
            let value = &trimmed[..end];
            match segment {
                Segment::Literal(s) if s == value => {}
                Segment::Param(name) if !value.is_empty() => params.push((name.as_str(), value)),
                _ => return None,
            }
            rest = &trimmed[end..];
        }
        let base = &path[..path.len() - rest.len()];
        if self.wildcard {
            Some((base, rest, params))
        } else {
            // A trailing slash does not make a different exact route.
            (rest.is_empty() || rest == "/").then_some((path, "", params))
        }
    }

    /// Orders candidates: exact routes first, then more literal segments,
    /// then longer prefixes.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, literals, self.segments.len())
    }
}

/// What [`RoutePattern::matches`] found: the matched prefix, the rest, and
/// the named segments' values.
type Matched<'s, 'p> = (&'p str, &'p str, Vec<(&'s str, &'p str)>);

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
                let (base, path_info, params) = pattern.matches(path)?;
                Some((
                    pattern.specificity(),
                    RouteMatch {
                        index,
                        route,
                        base,
                        path_info,
                        params,
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
        let r = router(&["/...", "/a/...", "/a/b/...", "/a/b", "/a/:x"]);
        assert_eq!(r.route("/a/b").unwrap().index, 3);
        assert_eq!(r.route("/a/b/").unwrap().index, 3);
        assert_eq!(r.route("/a/b/c").unwrap().index, 2);
        assert_eq!(r.route("/a/x").unwrap().index, 4);
        assert_eq!(r.route("/a/x/y").unwrap().index, 1);
        assert_eq!(r.route("/zzz").unwrap().index, 0);
        assert_eq!(r.route("/").unwrap().index, 0);
    }

    #[test]
    fn named_segments_are_captured() {
        let r = router(&["/users/:id/...", "/exact"]);
        let m = r.route("/users/ada/posts/1").unwrap();
        assert_eq!(m.params, vec![("id", "ada")]);
        assert_eq!((m.base, m.path_info), ("/users/ada", "/posts/1"));
        assert!(r.route("/users//posts").is_none());
        assert_eq!(r.route("/users/:id/...").unwrap().route, "/users/:id/...");
    }

    #[test]
    fn routes_join_the_base_as_spin_does() {
        let p = RoutePattern::parse_under("/api", "users/...").unwrap();
        assert_eq!(p.as_route(), "/api/users/...");
        assert_eq!(RoutePattern::parse("x").unwrap().as_route(), "/x");
        assert_eq!(RoutePattern::parse("/...").unwrap().as_route(), "/...");
        assert_eq!(RoutePattern::parse("/").unwrap().as_route(), "/");
    }

    #[test]
    fn bad_routes_are_rejected() {
        assert!(RoutePattern::parse("/a/.../b").is_err());
        assert!(RoutePattern::parse("/a/*").is_err());
        assert!(RoutePattern::parse("/a/:").is_err());
        assert!(RoutePattern::parse_under("api", "/x").is_err());
    }
}
