//! Which endpoint a request path names, and the method it takes. The whole
//! path is read (the manifest routes `/v2/...` here), so the function answers
//! the same under any host that passes the path through.

/// An endpoint of the protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2`
    Server,
    /// `/v2/health/live`
    Live,
    /// `/v2/health/ready`
    Ready,
    /// `/v2/models/stats`: every model's statistics.
    AllStats,
    /// `/v2/models/<name>[/versions/<v>][/ready|/infer|/config|/stats]`
    Model {
        name: &'a str,
        version: Option<&'a str>,
        action: ModelAction,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAction {
    Metadata,
    Ready,
    Infer,
    /// The model configuration extension.
    Config,
    /// The statistics extension.
    Stats,
}

/// The endpoints, for a 404's message.
pub const USAGE: &str = "GET /v2, GET /v2/health/live, GET /v2/health/ready, \
    GET /v2/models/<name>[/versions/<v>], GET /v2/models/<name>[/versions/<v>]/ready, \
    POST /v2/models/<name>[/versions/<v>]/infer, GET /v2/models/<name>[/versions/<v>]/config, \
    GET /v2/models[/<name>[/versions/<v>]]/stats";

impl Route<'_> {
    /// The one method the endpoint takes, as the `Allow` header names it.
    pub fn method(&self) -> &'static str {
        match self {
            Route::Model {
                action: ModelAction::Infer,
                ..
            } => "POST",
            _ => "GET",
        }
    }
}

/// The endpoint `path` names, if any. Empty segments are skipped, so a
/// trailing slash (or a doubled one) names the same endpoint as without.
pub fn parse(path: &str) -> Option<Route<'_>> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    if segments.next() != Some("v2") {
        return None;
    }
    let rest: Vec<&str> = segments.collect();
    let (name, rest) = match rest.as_slice() {
        [] => return Some(Route::Server),
        ["health", "live"] => return Some(Route::Live),
        ["health", "ready"] => return Some(Route::Ready),
        // As Triton reads it: a model named "stats" has no metadata path.
        ["models", "stats"] => return Some(Route::AllStats),
        ["models", name, rest @ ..] => (*name, rest),
        _ => return None,
    };
    let (version, rest) = match rest {
        ["versions", version, rest @ ..] => (Some(*version), rest),
        _ => (None, rest),
    };
    let action = match rest {
        [] => ModelAction::Metadata,
        ["ready"] => ModelAction::Ready,
        ["infer"] => ModelAction::Infer,
        ["config"] => ModelAction::Config,
        ["stats"] => ModelAction::Stats,
        _ => return None,
    };
    Some(Route::Model {
        name,
        version,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(
        name: &'static str,
        version: Option<&'static str>,
        action: ModelAction,
    ) -> Option<Route<'static>> {
        Some(Route::Model {
            name,
            version,
            action,
        })
    }

    #[test]
    fn server_and_health() {
        for p in ["/v2", "/v2/", "v2", "//v2//"] {
            assert_eq!(parse(p), Some(Route::Server), "{p}");
        }
        assert_eq!(parse("/v2/health/live"), Some(Route::Live));
        assert_eq!(parse("/v2/health/live/"), Some(Route::Live));
        assert_eq!(parse("/v2/health/ready"), Some(Route::Ready));
        assert_eq!(parse("/v2/health/ready/"), Some(Route::Ready));
        assert_eq!(parse("/v2/models/stats"), Some(Route::AllStats));
        assert_eq!(parse("/v2/models/stats/"), Some(Route::AllStats));
    }

    #[test]
    fn model_paths() {
        use ModelAction::*;
        let cases = [
            ("/v2/models/m", model("m", None, Metadata)),
            ("/v2/models/m/", model("m", None, Metadata)),
            ("/v2/models/m/ready", model("m", None, Ready)),
            ("/v2/models/m/infer", model("m", None, Infer)),
            ("/v2/models/m/infer/", model("m", None, Infer)),
            ("/v2/models/m/versions/1", model("m", Some("1"), Metadata)),
            ("/v2/models/m/versions/1/", model("m", Some("1"), Metadata)),
            (
                "/v2/models/m/versions/1/ready",
                model("m", Some("1"), Ready),
            ),
            (
                "/v2/models/m/versions/2/infer",
                model("m", Some("2"), Infer),
            ),
            // Names that are also keywords are still names in their place.
            ("/v2/models/ready", model("ready", None, Metadata)),
            ("/v2/models/infer/infer", model("infer", None, Infer)),
            ("/v2/models/versions", model("versions", None, Metadata)),
            ("/v2/models/m/config", model("m", None, Config)),
            (
                "/v2/models/m/versions/2/config",
                model("m", Some("2"), Config),
            ),
            ("/v2/models/m/stats", model("m", None, Stats)),
            (
                "/v2/models/m/versions/2/stats/",
                model("m", Some("2"), Stats),
            ),
            ("/v2/models/stats/stats", model("stats", None, Stats)),
            (
                "/v2/models/m/versions/ready",
                model("m", Some("ready"), Metadata),
            ),
            (
                "/v2/models/efficientnet-lite0/infer",
                model("efficientnet-lite0", None, Infer),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(parse(path), expected, "{path}");
        }
    }

    #[test]
    fn other_paths_are_none() {
        for p in [
            "",
            "/",
            "/v1",
            "/v2x",
            "/v3/models/m",
            "/models/m",
            "/v2/health",
            "/v2/health/other",
            "/v2/health/live/now",
            "/v2/models",
            "/v2/models/",
            "/v2/models/m/other",
            "/v2/models/m/versions",
            "/v2/models/m/versions/1/other",
            "/v2/models/m/infer/more",
            "/v2/models/m/ready/infer",
            "/v2/models/m/versions/1/infer/x",
            "/v2/models/m/config/x",
            "/v2/models/stats/x",
            "/v2/repository/index",
        ] {
            assert_eq!(parse(p), None, "{p}");
        }
    }

    #[test]
    fn infer_takes_post_the_rest_get() {
        assert_eq!(parse("/v2/models/m/infer").unwrap().method(), "POST");
        assert_eq!(
            parse("/v2/models/m/versions/1/infer").unwrap().method(),
            "POST"
        );
        for p in [
            "/v2",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/m",
            "/v2/models/m/ready",
            "/v2/models/m/config",
            "/v2/models/stats",
            "/v2/models/m/versions/1/stats",
        ] {
            assert_eq!(parse(p).unwrap().method(), "GET", "{p}");
        }
    }
}
