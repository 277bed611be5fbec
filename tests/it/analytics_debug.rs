//! The debug line in the specification's form (`[Analytics] screen_view { screen_name: 'home' }`)
//! is the one Node prints: the shared vectors `tests/vectors/analytics_debug.json`, which the
//! Node tests check against `util.inspect` itself.

use railgun_core::analytics::{debug_line, Properties};

#[derive(serde::Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    properties: Option<Properties>,
    line: String,
}

#[test]
fn the_debug_line_of_every_shared_vector_is_what_node_prints() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/analytics_debug.json"
    );
    let text = std::fs::read_to_string(path).expect("the shared vectors");
    let v: Vectors = serde_json::from_str(&text).expect("vectors");
    assert!(v.vectors.len() >= 10, "{} vectors", v.vectors.len());
    for t in &v.vectors {
        assert_eq!(
            debug_line(&t.name, t.properties.as_ref()),
            t.line,
            "{}",
            t.name
        );
    }
}
