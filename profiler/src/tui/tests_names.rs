//! A hostile VM name and uuid on every screen: ratatui writes control characters through to
//! the terminal, so each place that draws a name escapes it (and the frame keeps none).

use crossterm::event::KeyCode;

use super::tests::{draw, feed, fixture, press};
use super::tests_advice::{intel, p2};
use super::App;
use crate::{
    decode::ExitNames,
    sample::Sample,
    text::testing::{assert_clean, EVIL},
};

fn renamed(mut samples: Vec<Sample>) -> Vec<Sample> {
    for s in &mut samples {
        for vm in s.vms.values_mut() {
            vm.name = EVIL.into();
            vm.uuid = Some(format!("u\u{202e}{EVIL}"));
        }
    }
    samples
}

#[test]
fn every_screen_escapes_names() {
    let mut a = App::new(ExitNames::builtin(), format!("replay: {EVIL}"));
    feed(&mut a, renamed(fixture(4)));
    assert_clean("VM list", &draw(&a, 200, 30));
    press(&mut a, KeyCode::Enter);
    let detail = draw(&a, 250, 30);
    assert_clean("VM detail", &detail);
    assert!(detail.contains("u\\u{202e}evil"), "{detail}");
    press(&mut a, KeyCode::Enter);
    assert_clean("histogram", &draw(&a, 200, 30));
    press(&mut a, KeyCode::Char('m'));
    assert_clean("heatmap", &draw(&a, 200, 30));
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::End);
    press(&mut a, KeyCode::Enter);
    assert_clean("vCPU", &draw(&a, 200, 30));
    a.on_error(format!("source: {EVIL}"));
    assert_clean("status line", &draw(&a, 200, 30));

    let (older, newer) = p2();
    let mut adv = App::new(ExitNames::builtin(), "fake".into()).with_host(intel());
    feed(&mut adv, renamed(vec![older, newer]));
    press(&mut adv, KeyCode::Char('a'));
    assert_clean("advice", &draw(&adv, 200, 30));
    press(&mut adv, KeyCode::Char('e'));
    assert_clean("advice details", &draw(&adv, 200, 40));
}
