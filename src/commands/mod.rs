//! Every subcommand, and the one exhaustive `match` that dispatches them.
//! Each leaf command lives in its own module as `<Name>Args` + `cmd_<name>`.

use clap::Subcommand;

use crate::context::CommandContext;
use crate::error::CliResult;

pub(crate) mod agent;
pub(crate) mod backup;
pub(crate) mod certify;
pub(crate) mod chat;
pub(crate) mod completions;
#[cfg(test)]
mod contract;
pub(crate) mod debug;
pub(crate) mod devices;
pub(crate) mod doctor;
pub(crate) mod download;
pub(crate) mod encrypt;
pub(crate) mod identity;
pub(crate) mod keys;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod messages;
pub(crate) mod olm;
pub(crate) mod recovery;
pub(crate) mod room;
pub(crate) mod rotate;
pub(crate) mod send;
pub(crate) mod sessions;
pub(crate) mod sync;
pub(crate) mod trust;
pub(crate) mod unwedge;
pub(crate) mod verify;
pub(crate) mod whoami;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Login(login::LoginArgs),
    Logout(logout::LogoutArgs),
    Whoami(whoami::WhoamiArgs),
    Sync(sync::SyncArgs),
    #[command(subcommand)]
    Room(room::RoomCommand),
    Send(send::SendArgs),
    Agent(agent::AgentArgs),
    Chat(chat::ChatArgs),
    Messages(messages::MessagesArgs),
    Download(download::DownloadArgs),
    Encrypt(encrypt::EncryptArgs),
    Sessions(sessions::SessionsArgs),
    #[command(alias = "discard-session")]
    Rotate(rotate::RotateArgs),
    Devices(devices::DevicesArgs),
    Identity(identity::IdentityArgs),
    Trust(trust::TrustArgs),
    Verify(verify::VerifyArgs),
    Certify(certify::CertifyArgs),
    Olm(olm::OlmArgs),
    Unwedge(unwedge::UnwedgeArgs),
    Doctor(doctor::DoctorArgs),
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    #[command(subcommand)]
    Recovery(recovery::RecoveryCommand),
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

/// What a command can answer before the async runtime starts: a `send`
/// handed to a warm follower (`warm`). `None`: run it as usual.
pub(crate) fn run_before_runtime(ctx: &CommandContext, command: &Command) -> Option<CliResult> {
    match command {
        Command::Send(args) => send::hand_over(ctx, args),
        _ => None,
    }
}

pub(crate) async fn run_command(ctx: &mut CommandContext, command: &Command) -> CliResult {
    match command {
        Command::Login(args) => login::cmd_login(ctx, args).await,
        Command::Logout(args) => logout::cmd_logout(ctx, args).await,
        Command::Whoami(args) => whoami::cmd_whoami(ctx, args).await,
        Command::Sync(args) => sync::cmd_sync(ctx, args).await,
        Command::Room(cmd) => room::run(ctx, cmd).await,
        Command::Send(args) => send::cmd_send(ctx, args).await,
        Command::Agent(args) => agent::cmd_agent(ctx, args).await,
        Command::Chat(args) => chat::cmd_chat(ctx, args).await,
        Command::Messages(args) => messages::cmd_messages(ctx, args).await,
        Command::Download(args) => download::cmd_download(ctx, args).await,
        Command::Encrypt(args) => encrypt::cmd_encrypt(ctx, args).await,
        Command::Sessions(args) => sessions::cmd_sessions(ctx, args).await,
        Command::Rotate(args) => rotate::cmd_rotate(ctx, args).await,
        Command::Devices(args) => devices::cmd_devices(ctx, args).await,
        Command::Identity(args) => identity::cmd_identity(ctx, args).await,
        Command::Trust(args) => trust::cmd_trust(ctx, args).await,
        Command::Verify(args) => verify::cmd_verify(ctx, args).await,
        Command::Certify(args) => certify::cmd_certify(ctx, args).await,
        Command::Olm(args) => olm::cmd_olm(ctx, args).await,
        Command::Unwedge(args) => unwedge::cmd_unwedge(ctx, args).await,
        Command::Doctor(args) => doctor::cmd_doctor(ctx, args).await,
        Command::Keys(cmd) => keys::run(ctx, cmd).await,
        Command::Recovery(cmd) => recovery::run(ctx, cmd).await,
        Command::Backup(cmd) => backup::run(ctx, cmd).await,
        Command::Debug(cmd) => debug::run(ctx, cmd).await,
        Command::Completions(args) => completions::cmd_completions(ctx, args).await,
        Command::Man(args) => completions::cmd_man(ctx, args).await,
    }
}
