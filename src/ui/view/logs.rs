//! The logs pane: the tail of the log ring (or the frozen copy), filtered by level and
//! session, with following / paused / frozen state and the count of dropped lines.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::super::logs::tail_of;
use super::super::model::{Model, Pane};
use super::widgets::{clip, pane};

pub fn draw(frame: &mut Frame, area: Rect, model: &Model) {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    let view = model.logs_view();
    let mut title = vec![Span::raw(" Logs ")];
    let state = if view.frozen.is_some() {
        "frozen"
    } else if view.follow {
        "following"
    } else {
        "paused"
    };
    title.push(Span::styled(format!("· {state} "), theme.dim));
    if let Some(level) = view.min_level {
        title.push(Span::styled(
            format!("· {}+ ", level.as_str().to_lowercase()),
            theme.message,
        ));
    }
    if let Some(session) = &view.session {
        title.push(Span::styled(format!("· {session} only "), theme.message));
    }
    let dropped = model.ring().dropped();
    if dropped > 0 {
        title.push(Span::styled(format!("· {dropped} dropped "), theme.message));
    }
    let block = pane(model, Line::from(title), model.focus() == Pane::Logs);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let height = usize::from(inner.height);
    let anchor = if view.follow { None } else { view.anchor };
    let keep = |l: &super::super::logs::LogLine| view.keeps(l);
    let lines = match &view.frozen {
        Some(frozen) => tail_of(frozen.iter(), height, anchor, keep),
        None => model.ring().tail(height, anchor, keep),
    };
    let width = usize::from(inner.width);
    let session_width = lines
        .iter()
        .filter_map(|l| l.session.as_ref().map(|s| s.chars().count()))
        .max()
        .unwrap_or(0)
        .min(14);
    let text: Vec<Line> = lines
        .iter()
        .map(|l| {
            let session = l.session.as_deref().unwrap_or("");
            let head = format!("{} {:<5} ", l.time, l.level.as_str());
            let who = if session_width > 0 {
                format!("{:<session_width$} ", clip(session, session_width, ascii))
            } else {
                String::new()
            };
            let room = width.saturating_sub(head.chars().count() + who.chars().count());
            Line::from(vec![
                Span::styled(l.time.clone(), theme.dim),
                Span::raw(" "),
                Span::styled(format!("{:<5}", l.level.as_str()), theme.level(l.level)),
                Span::raw(" "),
                Span::styled(who, theme.dim),
                Span::styled(clip(&l.text, room, ascii), theme.text),
            ])
        })
        .collect();
    if text.is_empty() {
        frame.render_widget(Span::styled("no log lines", theme.dim), inner);
    } else {
        frame.render_widget(Paragraph::new(text), inner);
    }
}
