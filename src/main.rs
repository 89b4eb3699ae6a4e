//! ecs-power-operator: keeps OTC / Huawei Cloud ECS servers stopped as `EcsPowerPolicy` resources declare.
use clap::{Parser, Subcommand};

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
}

fn main() {
    match Cli::parse().command {
        Command::Crd => print!("{}", ecs_power_operator::policy::crd_yaml()),
    }
}
