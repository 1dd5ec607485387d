//! The message dialog (`m`): who it goes from, the number and the text being typed (the field
//! with the keys shows the cursor), and the keys that send, switch field and cancel.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::super::compose::STAGGER;
use super::super::keymap::{Action, Section};
use super::super::model::{Compose, Field, Model};
use super::confirm::listing;
use super::widgets::{cursor, dialog, named};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model, compose: &Compose) {
    let theme = model.theme();
    let keymap = &model.settings().keymap;
    let (title, from) = match compose.ids.as_slice() {
        [one] => (" Message ", format!("From {}", named(model, one))),
        many => (
            " Test message ",
            format!(
                "One from each of {} marked sessions, {}s apart: {}",
                many.len(),
                STAGGER.as_secs(),
                listing(many)
            ),
        ),
    };
    let field = |name: &str, value: &str, this: Field| {
        let shown = if compose.field == this {
            format!("{value}{}", cursor(model))
        } else {
            value.to_string()
        };
        let style = if compose.field == this {
            theme.key
        } else {
            theme.text
        };
        Line::from(vec![
            Span::styled(format!("{name:<6}"), theme.text),
            Span::styled(shown, style),
        ])
    };
    let lines = vec![
        Line::from(Span::styled(from, theme.title)),
        Line::default(),
        field("To:", &compose.to, Field::To),
        field("Text:", &compose.text, Field::Text),
        Line::default(),
        Line::from(Span::styled(
            format!(
                "{} sends · {} the other field · {} cancels",
                keymap.control_hint(Section::Dialog, Action::Confirm),
                keymap.control_hint(Section::Dialog, Action::ToggleBackup),
                keymap.control_hint(Section::Dialog, Action::Cancel),
            ),
            theme.dim,
        )),
    ];
    dialog(frame, area, model, title, lines);
}
