//! ecs-power-operator: keeps OTC / Huawei Cloud ECS servers stopped as `EcsPowerPolicy` resources declare.
use clap::{Parser, Subcommand};
use ecs_power_operator::operator::{self, RunArgs};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the EcsPowerPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Run the operator against the cluster of KUBECONFIG (or the in-cluster config).
    Run(Box<RunArgs>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube and reqwest both bring rustls; the process must name one crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Crd => print!("{}", ecs_power_operator::policy::crd_yaml()),
        Command::Run(args) => {
            ecs_power_operator::telemetry::init(args.log_format);
            operator::run(*args).await?;
        }
    }
    Ok(())
}
