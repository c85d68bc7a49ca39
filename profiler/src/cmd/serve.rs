//! `kvmprof serve`: the Prometheus/OpenMetrics exporter (headless).

use crate::{cli::ServeArgs, export, session::Env};

pub fn serve(env: &mut Env, a: &ServeArgs) -> anyhow::Result<()> {
    let src = env.open_live()?;
    export::serve(
        src,
        export::ServeOpts {
            listen: a.listen,
            interval: env.global.interval,
            export: export::ExportOpts {
                top_reasons: a.top_reasons,
                per_vcpu: a.per_vcpu,
                sub_reasons: a.sub_reasons,
                keep_exited: a.keep_exited,
            },
            advice_window: (!a.no_advice).then_some(std::time::Duration::from_secs(60)),
            ready_file: a.ready_file.clone(),
            http: export::HttpLimits::default(),
        },
    )
}
