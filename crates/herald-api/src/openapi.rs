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
}

/// Lists each field alias the server accepts (`dto::ALIASES`) as a property of its own,
/// described as the field it stands for: a schema with `additionalProperties: false`
/// must not refuse what the server takes.
fn add_aliases(components: &mut Components) {
    for (schema, alias, field) in crate::dto::ALIASES {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*schema) else {
            continue;
        };
        if let Some(property) = object.properties.get(*field).cloned() {
            object.properties.insert(alias.to_string(), property);
        }
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
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
        }
        if op.list {
            for (name, ty, about) in [
                ("limit", Type::Integer, "page size, 1 to 250 (default 50)"),
                (
                    "iterator",
                    Type::String,
                    "cursor from a previous page; a leading '-' walks back",
                ),
                ("order", Type::String, "ascending or descending"),
            ] {
                b = b.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(about))
                        .schema(Some(ObjectBuilder::new().schema_type(ty))),
                );
            }
        }
        if let Some(request) = op.request {
            let body = RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(request(&mut components)));
            b = b.request_body(Some(body.build()));
        }
        let mut ok = ResponseBuilder::new().description("success");
        if let Some(response) = op.response {
            ok = ok.content("application/json", json_content(response(&mut components)));
        }
        b = b.response(op.status.to_string(), ok.build());
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
                );
        }
        paths.add_path_operation(
            format!("/api/v1{}", op.path),
            vec![op.method.clone()],
            b.build(),
        );
    }
    add_aliases(&mut components);
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

#[cfg(test)]
mod tests {
    /// Every `alias = "…"` in the wire types is listed in `dto::ALIASES`, and the
    /// served document has each as a property of its schema.
    #[test]
    fn every_field_alias_the_server_accepts_is_in_the_document() {
        let source = include_str!("dto.rs");
        let in_source = source.matches("alias = \"").count();
        assert_eq!(
            in_source,
            crate::dto::ALIASES.len(),
            "an alias in dto.rs is missing from dto::ALIASES"
        );
        let doc: serde_json::Value = serde_json::from_str(&crate::router::openapi_json()).unwrap();
        for (schema, alias, field) in crate::dto::ALIASES {
            let properties = &doc["components"]["schemas"][schema]["properties"];
            assert!(properties[field].is_object(), "{schema}.{field}");
            assert_eq!(properties[alias], properties[field], "{schema}.{alias}");
        }
    }
}
