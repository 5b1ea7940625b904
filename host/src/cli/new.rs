//! `wasi-infer new <template> <name>`: a function crate from a template in
//! `functions/<name>/`, a member of the functions' workspace, routed to in
//! the manifest (see [`wasi_infer::scaffold`]).

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser};
use wasi_infer::scaffold::{self, NewFunction, TEMPLATES};

#[derive(clap::Args)]
pub struct NewArgs {
    /// What the function starts as.
    #[arg(value_parser = templates())]
    template: String,
    /// The function's name: its folder in functions/, its crate, its
    /// component and (unless --route says otherwise) its route, /NAME/...
    name: String,
    /// The application manifest to add the function to; functions/ is beside it.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// The route's prefix [default: /NAME].
    #[arg(long)]
    route: Option<String>,
    /// A model the function may load (repeat for more) [default: every model
    /// of the template's task in the repository].
    #[arg(long = "model", value_name = "NAME")]
    models: Vec<String>,
    /// The model repository [default: models/ beside the manifest].
    #[arg(long = "models")]
    models_dir: Option<PathBuf>,
}

fn templates() -> PossibleValuesParser {
    PossibleValuesParser::new(
        TEMPLATES
            .iter()
            .map(|t| PossibleValue::new(t.name).help(t.summary)),
    )
}

pub fn new(args: NewArgs) -> anyhow::Result<()> {
    let plan = scaffold::plan(&NewFunction {
        template: &args.template,
        name: &args.name,
        manifest: &args.manifest,
        route: args.route.as_deref(),
        models: &args.models,
        models_dir: args.models_dir.as_deref(),
    })?;
    plan.write()?;

    println!("Wrote {}/", plan.crate_dir.display());
    for (path, _) in &plan.files {
        println!("  {}", path.display());
    }
    println!("Added {:?} to {}", args.name, plan.workspace.path.display());
    println!(
        "Routed {}/... to it in {}",
        plan.route,
        plan.manifest.path.display()
    );
    match plan.models.as_slice() {
        [] => println!(
            "It may load no model yet: name some in ai_models (or run new again with --model NAME)"
        ),
        models => println!("It may load: {}", models.join(", ")),
    }
    let model = plan.models.first().map_or("<model>", String::as_str);
    let try_with = scaffold::templates::find(&args.template).map_or("", |t| t.try_with);
    println!();
    println!("Next:");
    println!(
        "  cargo test --manifest-path functions/Cargo.toml -p {} --lib",
        args.name
    );
    println!("  cargo run --release -- serve --listen 127.0.0.1:3000");
    println!("  curl {try_with} localhost:3000{}/{model}", plan.route);
    Ok(())
}
