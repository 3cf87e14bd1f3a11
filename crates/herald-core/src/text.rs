//! Small text helpers shared by the API and the engine.

/// Cuts `text` to at most `max_bytes`, at a character boundary (for bodies kept in logs).
pub fn truncate_utf8(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let cut = (0..=max_bytes)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_at_a_character_boundary() {
        let mut s = "aé".to_string(); // 'é' is two bytes: a cut at 2 would split it
        super::truncate_utf8(&mut s, 2);
        assert_eq!(s, "a");
        let mut short = "abc".to_string();
        super::truncate_utf8(&mut short, 10);
        assert_eq!(short, "abc");
    }
}
