pub(crate) async fn run(
    _: &crate::cmd::Global,
    _: DoctorArgs,
) -> Result<(), crate::exit::CliError> {
    Ok(())
}
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {}
