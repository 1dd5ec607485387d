//! The detail pane's messages: the last hour's counts, the outbox when it holds any, then the
//! newest messages in and out of the selected session with where each stands, newest first.

use std::time::Instant;

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::super::fmt;
use super::super::messages::{Stage, Way};
use super::super::model::Model;
use super::widgets::clip;
use crate::session::status::{StateName, Status};

/// At most `max` lines: the counts, the outbox, then one line per message.
pub fn lines(
    s: &Status,
    model: &Model,
    now: Instant,
    width: usize,
    max: usize,
) -> Vec<Line<'static>> {
    let theme = model.theme();
    let ascii = model.settings().ascii;
    if max == 0 {
        return Vec::new();
    }
    let o = &s.outbox;
    let head = format!(
        "1h: sent {} · dlvd {}{} · in {}",
        o.sent_1h,
        o.delivered_1h,
        o.delivery_pct()
            .map_or_else(String::new, |p| format!(" ({})", fmt::percent(p))),
        o.received_1h
    );
    let mut out = vec![Line::from(Span::styled(
        clip(&head, width, ascii),
        theme.dim,
    ))];
    if o.queued > 0 && max > 1 {
        let mut queue = format!("outbox: {} queued", o.queued);
        if let Some(at) = o.next_send_at {
            queue.push_str(&format!(" · next send in {}", fmt::countdown(at, now)));
        }
        out.push(Line::from(Span::styled(
            clip(&queue, width, ascii),
            theme.text,
        )));
    }
    let kept = model.messages(&s.id);
    if kept.is_empty() && max > out.len() {
        out.push(Line::from(Span::styled("  (no messages yet)", theme.dim)));
    }
    let room = max.saturating_sub(out.len());
    for m in kept.iter().take(room) {
        let arrow = match (m.way, ascii) {
            (Way::Out, false) => "→",
            (Way::Out, true) => ">",
            (Way::In, false) => "←",
            (Way::In, true) => "<",
        };
        let stage = match &m.stage {
            Stage::Failed(why) => format!("failed: {why}"),
            other => other.name().to_string(),
        };
        let when = format!("{:>6} {arrow} ", fmt::age(m.at, now));
        let peer = format!("{} ", m.peer_number());
        let stage = format!("{stage:<9} ");
        let used = [&when, &peer, &stage]
            .iter()
            .map(|t| t.chars().count())
            .sum::<usize>();
        let text = clip(
            m.text.as_deref().unwrap_or(""),
            width.saturating_sub(used),
            ascii,
        );
        out.push(Line::from(vec![
            Span::styled(when, theme.dim),
            Span::styled(peer, theme.text),
            Span::styled(stage, stage_style(model, &m.stage)),
            Span::styled(text, theme.text),
        ]));
    }
    out
}

/// Delivered and read in the online colour, a failure in the error colour, the rest dim.
fn stage_style(model: &Model, stage: &Stage) -> Style {
    let theme = model.theme();
    match stage {
        Stage::Delivered | Stage::Read => theme.state(StateName::Online),
        Stage::Failed(_) => theme.error,
        Stage::Received => theme.text,
        Stage::Queued | Stage::Sent => theme.dim,
    }
}
