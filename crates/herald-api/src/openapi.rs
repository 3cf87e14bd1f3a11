//! The OpenAPI 3.1 document, generated from the route table in `router.rs` (paths,
//! methods, parameters) and from the wire types' `ToSchema` derives (bodies), so it
//! cannot drift from what the server serves.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required,
    ResponseBuilder, Schema,
};
use utoipa::ToSchema;

use crate::error::{ErrorOut, ValidationErrorOut};

/// Registers a schema (and those it refers to) and returns a reference to it.
pub type SchemaFn = fn(&mut Components) -> RefOr<Schema>;

pub fn schema_of<T: ToSchema>(c: &mut Components) -> RefOr<Schema> {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    c.schemas.extend(deps);
    let name = T::name().to_string();
    c.schemas.insert(name.clone(), T::schema());
    Ref::from_schema_name(name).into()
}

/// `{data: [T], iterator, prevIterator, done}`.
pub fn list_of<T: ToSchema>(c: &mut Components) -> RefOr<Schema> {
    let item = schema_of::<T>(c);
    let nullable_string = || {
        ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
    };
    ObjectBuilder::new()
        .property("data", ArrayBuilder::new().items(item))
        .required("data")
        .property("iterator", nullable_string())
        .required("iterator")
        .property("prevIterator", nullable_string())
        .property("done", ObjectBuilder::new().schema_type(Type::Boolean))
        .required("done")
        .into()
}

/// Any JSON object (used for free-form answers such as `{}`).
pub fn object(_: &mut Components) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Object).into()
}

/// What a query parameter takes, as the handlers check it (`extract::QueryPairs`).
#[derive(Clone, Copy)]
pub enum QueryKind {
    Int {
        min: i64,
        max: i64,
    },
    /// One of these integers.
    IntOf(&'static [i64]),
    Bool,
    /// An RFC 3339 timestamp.
    DateTime,
    Text,
    /// Repeated, or comma-separated.
    TextList,
    /// Text matching a pattern.
    Pattern(&'static str),
    Choice(&'static [&'static str]),
}

/// A query parameter of an operation.
#[derive(Clone, Copy)]
pub struct QueryParam {
    pub name: &'static str,
    pub kind: QueryKind,
    pub about: &'static str,
}

/// `limit`, `iterator` and `order`, which every list takes.
pub const LIST_PARAMS: &[QueryParam] = &[
    QueryParam {
        name: "limit",
        kind: QueryKind::Int { min: 1, max: 250 },
        about: "page size, 1 to 250 (default 50)",
    },
    QueryParam {
        name: "iterator",
        kind: QueryKind::Text,
        about: "cursor from a previous page; a leading '-' walks back",
    },
    QueryParam {
        name: "order",
        kind: QueryKind::Choice(&["ascending", "descending"]),
        about: "ascending or descending",
    },
];

/// One operation as the route table describes it.
pub struct Operation {
    pub method: HttpMethod,
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub auth: bool,
    pub list: bool,
    pub request: Option<SchemaFn>,
    pub status: u16,
    pub response: Option<SchemaFn>,
    /// The success response's media type (`text/event-stream` for the listen stream).
    pub media_type: &'static str,
    /// Query parameters besides the list ones.
    pub query: &'static [QueryParam],
    /// Another success status with the same body (201 when a PUT creates, 200 when a
    /// create finds what exists).
    pub also: Option<u16>,
    /// The request body may be left out (every field is optional).
    pub body_optional: bool,
    /// A public route that still refuses (signing in): it answers 400, 401, 403, 404 and
    /// 422 too.
    pub refuses: bool,
}

fn query_schema(kind: QueryKind) -> ObjectBuilder {
    use utoipa::openapi::schema::SchemaFormat;
    use utoipa::openapi::KnownFormat;
    match kind {
        QueryKind::Int { min, max } => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max)),
        QueryKind::IntOf(values) => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some(values.iter().copied())),
        QueryKind::Bool => ObjectBuilder::new().schema_type(Type::Boolean),
        QueryKind::DateTime => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        QueryKind::Text | QueryKind::TextList => ObjectBuilder::new().schema_type(Type::String),
        QueryKind::Pattern(pattern) => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern)),
        QueryKind::Choice(values) => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied())),
    }
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

pub fn document(ops: &[Operation]) -> OpenApi {
    let mut components = Components::new();
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let error = schema_of::<ErrorOut>(&mut components);
    let validation = schema_of::<ValidationErrorOut>(&mut components);
    let mut paths = Paths::new();
    for op in ops {
        let mut b = OperationBuilder::new()
            .operation_id(Some(op.id))
            .summary(Some(op.summary))
            .tag(op.tag);
        for segment in op.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                b = b.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .description(Some("the id, or the uid (eventId for messages)"))
                        // Ids, uids, event ids and event-type names are all identifiers.
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .min_length(Some(1))
                                .max_length(Some(256))
                                .pattern(Some("^[a-zA-Z0-9\\-_.]+$")),
                        )),
                );
            }
        }
        let list_params: &[QueryParam] = if op.list { LIST_PARAMS } else { &[] };
        for param in list_params.iter().chain(op.query) {
            let schema: RefOr<Schema> = match param.kind {
                QueryKind::TextList => ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .into(),
                kind => query_schema(kind).into(),
            };
            b = b.parameter(
                ParameterBuilder::new()
                    .name(param.name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(param.about))
                    .schema(Some(schema)),
            );
        }
        if let Some(request) = op.request {
            let required = if op.body_optional {
                Required::False
            } else {
                Required::True
            };
            let body = RequestBodyBuilder::new()
                .required(Some(required))
                .content("application/json", json_content(request(&mut components)));
            b = b.request_body(Some(body.build()));
        }
        let mut ok = ResponseBuilder::new().description("success");
        if let Some(response) = op.response {
            ok = ok.content(op.media_type, json_content(response(&mut components)));
        }
        let ok = ok.build();
        if let Some(also) = op.also {
            b = b.response(also.to_string(), ok.clone());
        }
        b = b.response(op.status.to_string(), ok);
        if !op.auth && op.refuses {
            for (status, what) in [
                ("400", "malformed request"),
                ("401", "the credentials were refused"),
                ("403", "not allowed"),
                ("404", "not configured, or not found"),
                ("422", "invalid input"),
                ("429", "too many failed sign-ins for this email; wait"),
                ("502", "the OpenID provider failed"),
            ] {
                let body = if status == "422" {
                    validation.clone()
                } else {
                    error.clone()
                };
                b = b.response(
                    status,
                    ResponseBuilder::new()
                        .description(what)
                        .content("application/json", json_content(body))
                        .build(),
                );
            }
        }
        if op.auth {
            b = b
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .response(
                    "401",
                    ResponseBuilder::new()
                        .description("missing or invalid token")
                        .content("application/json", json_content(error.clone()))
                        .build(),
                )
                .response(
                    "404",
                    ResponseBuilder::new()
                        .description("not found")
                        .content("application/json", json_content(error.clone()))
                        .build(),
                )
                .response(
                    "422",
                    ResponseBuilder::new()
                        .description("invalid input")
                        .content("application/json", json_content(validation.clone()))
                        .build(),
                )
                .response(
                    "400",
                    ResponseBuilder::new()
                        .description("malformed request: a body that is not JSON, or a query parameter given twice")
                        .content("application/json", json_content(error.clone()))
                        .build(),
                );
            if op.request.is_some() {
                b = b.response(
                    "413",
                    ResponseBuilder::new()
                        .description("the body is larger than max_body_bytes")
                        .content("application/json", json_content(error.clone()))
                        .build(),
                );
            }
            if matches!(
                op.method,
                HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
            ) {
                b = b.response(
                    "409",
                    ResponseBuilder::new()
                        .description("conflict: a uid, name or eventId already taken")
                        .content("application/json", json_content(error.clone()))
                        .build(),
                );
            }
        }
        let path = if op.path.starts_with(crate::router::INGEST_PREFIX) {
            op.path.to_string()
        } else {
            format!("/api/v1{}", op.path)
        };
        paths.add_path_operation(path, vec![op.method.clone()], b.build());
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Herald API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Herald's management API, wire-compatible with the Svix v1 API.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}
