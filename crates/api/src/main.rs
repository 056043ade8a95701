//! The `catalogd` binary: `serve` and `admin`.

use catalog_api::config::{
    config_file_of, sqlite_file, with_config_file, AdminCommand, Cli, Command, DatabaseArgs, KeyCommand, ProjectCommand,
};
use catalog_api::serve::serve;
use catalog_domain::time::format_rfc3339;
use catalog_store::{ApiKeyId, Scope, Store, StoreConfig};
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let command = match config_file_of(&args) {
        Some(path) => match with_config_file(Cli::command(), &path) {
            Ok(command) => command,
            Err(message) => {
                eprintln!("catalogd: {message}");
                return ExitCode::FAILURE;
            }
        },
        None => Cli::command(),
    };
    let cli = match Cli::from_arg_matches(&command.get_matches_from(args)) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("catalogd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Openapi => {
                print!("{}", catalog_api::native::openapi_json());
                Ok(())
            }
            Command::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "catalogd", &mut std::io::stdout());
                Ok(())
            }
            Command::Admin { database, command } => admin(database, command).await,
        }
    });
    // Whatever a task still holds (a connection being closed) does not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("catalogd: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn admin(database: DatabaseArgs, command: AdminCommand) -> Result<(), String> {
    // Run in the wrong directory, `admin` would otherwise create an empty database there and then
    // find no project in it. Only creating a project may start a database.
    if let Some(file) = sqlite_file(&database.database_url).filter(|file| !file.exists()) {
        let absolute = std::path::absolute(&file).unwrap_or_else(|_| file.clone());
        if !matches!(command, AdminCommand::Project { command: ProjectCommand::Create { .. } }) {
            return Err(format!(
                "no database at {}: run catalogd admin where catalogd serve runs, or name the database with \
                 --database-url, CATALOGD_DATABASE_URL or --config",
                absolute.display()
            ));
        }
        eprintln!("catalogd: creating a new database at {}", absolute.display());
    }
    let store = Store::connect(&database.database_url, StoreConfig::default())
        .await
        .map_err(|e| format!("cannot open {}: {e}", catalog_api::serve::redact(&database.database_url)))?;
    let outcome = run_admin(&store, command).await;
    store.close().await;
    outcome
}

async fn run_admin(store: &Store, command: AdminCommand) -> Result<(), String> {
    match command {
        AdminCommand::Project { command: ProjectCommand::Create { key, name } } => {
            let project =
                store.create_project(&key, name.as_deref().unwrap_or(&key)).await.map_err(|e| e.to_string())?;
            println!("created project {} ({})", project.key, project.name);
        }
        AdminCommand::Project { command: ProjectCommand::List } => {
            for project in store.list_projects().await.map_err(|e| e.to_string())? {
                println!("{}\t{}\t{}", project.key, project.name, format_rfc3339(project.created_at));
            }
        }
        AdminCommand::Key { command: KeyCommand::Create { project, scopes } } => {
            let scopes = scopes.iter().map(|s| s.trim().parse::<Scope>()).collect::<Result<Vec<_>, _>>()?;
            let project = store.get_project_by_key(&project).await.map_err(|e| e.to_string())?;
            let created = store.create_api_key(project.id, None, &scopes).await.map_err(|e| e.to_string())?;
            let scopes: Vec<_> = created.key.scopes.iter().map(|s| s.as_str()).collect();
            println!("created key {} for project {} with scopes {}", created.key.id, project.key, scopes.join(","));
            println!("the token is shown this once; store it now:");
            println!("{}", created.token);
        }
        AdminCommand::Key { command: KeyCommand::List { project } } => {
            let project = store.get_project_by_key(&project).await.map_err(|e| e.to_string())?;
            for key in store.list_api_keys(project.id).await.map_err(|e| e.to_string())? {
                let scopes: Vec<_> = key.scopes.iter().map(|s| s.as_str()).collect();
                let state =
                    key.revoked_at.map_or_else(|| "active".to_owned(), |at| format!("revoked {}", format_rfc3339(at)));
                println!(
                    "{}\t{}…\t{}\t{}\t{}",
                    key.id,
                    key.prefix,
                    scopes.join(","),
                    format_rfc3339(key.created_at),
                    state
                );
            }
        }
        AdminCommand::Key { command: KeyCommand::Revoke { id } } => {
            store.revoke_api_key_by_id(ApiKeyId(id)).await.map_err(|e| e.to_string())?;
            println!("revoked key {id}");
        }
    }
    Ok(())
}
