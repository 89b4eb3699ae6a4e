use super::spec::{AfterWindow, Day, ExceptionSpec, ScheduleSpec, WindowSpec};
use super::*;
use proptest::prelude::*;

fn window(days: &[Day], from: Option<&str>, to: Option<&str>) -> WindowSpec {
    WindowSpec {
        days: days.to_vec(),
        from: from.map(str::to_owned),
        to: to.map(str::to_owned),
    }
}

fn compiled(zone: &str, windows: Vec<WindowSpec>, exceptions: Vec<ExceptionSpec>) -> Schedule {
    Schedule::compile(&ScheduleSpec {
        time_zone: zone.to_owned(),
        windows,
        exceptions,
        after_window: AfterWindow::Leave,
        start_lead_time: None,
    })
    .expect("a valid schedule")
}

const WEEKDAYS: [Day; 5] = [Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri];

/// Weeknights 19:00 to 07:00 and whole weekends, in Berlin: the design's example.
fn nights_and_weekends(exceptions: Vec<ExceptionSpec>) -> Schedule {
    compiled(
        "Europe/Berlin",
        vec![
            window(&WEEKDAYS, Some("19:00"), Some("07:00")),
            window(&[Day::Sat, Day::Sun], None, None),
        ],
        exceptions,
    )
}

fn ts(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 instant")
}

/// (instant, stopped, next transition) for each row.
fn check(schedule: &Schedule, rows: &[(&str, bool, Option<&str>)]) {
    for (at, stopped, next) in rows {
        let evaluation = schedule.evaluate(ts(at));
        assert_eq!(
            evaluation,
            Evaluation {
                stopped: *stopped,
                next_transition: next.map(ts),
            },
            "at {at}"
        );
    }
}

#[test]
fn weeknights_and_weekends_in_berlin() {
    // 2026-12-07 is a Monday; Berlin is at +01:00 in December.
    check(
        &nights_and_weekends(vec![]),
        &[
            (
                "2026-12-07T12:00:00+01:00",
                false,
                Some("2026-12-07T19:00:00+01:00"),
            ),
            (
                "2026-12-07T19:00:00+01:00",
                true,
                Some("2026-12-08T07:00:00+01:00"),
            ),
            // Across midnight: the window begun on Monday holds until Tuesday 07:00.
            (
                "2026-12-08T03:00:00+01:00",
                true,
                Some("2026-12-08T07:00:00+01:00"),
            ),
            (
                "2026-12-08T07:00:00+01:00",
                false,
                Some("2026-12-08T19:00:00+01:00"),
            ),
            // Friday night runs into the weekend; Sunday's whole day ends at midnight,
            // and no window begins on Sunday evening.
            (
                "2026-12-11T20:00:00+01:00",
                true,
                Some("2026-12-14T00:00:00+01:00"),
            ),
            (
                "2026-12-13T23:59:59+01:00",
                true,
                Some("2026-12-14T00:00:00+01:00"),
            ),
            (
                "2026-12-14T00:00:00+01:00",
                false,
                Some("2026-12-14T19:00:00+01:00"),
            ),
        ],
    );
}

#[test]
fn exception_days_decide_the_whole_local_date() {
    let schedule = nights_and_weekends(vec![
        ExceptionSpec {
            dates: vec!["2026-12-24".into(), "2026-12-31".into()],
            from: None,
            to: None,
            stopped: true,
        },
        ExceptionSpec {
            dates: vec![],
            from: Some("2026-12-07".into()),
            to: Some("2026-12-11".into()),
            stopped: false,
        },
    ]);
    check(
        &schedule,
        &[
            // Release week: nothing stopped Monday to Friday, the Friday night included
            // until the local date turns Saturday.
            (
                "2026-12-07T20:00:00+01:00",
                false,
                Some("2026-12-12T00:00:00+01:00"),
            ),
            (
                "2026-12-11T23:00:00+01:00",
                false,
                Some("2026-12-12T00:00:00+01:00"),
            ),
            (
                "2026-12-12T00:00:00+01:00",
                true,
                Some("2026-12-14T00:00:00+01:00"),
            ),
            // Christmas Eve (a Thursday) is stopped from midnight, and Thursday's night
            // window carries it on to Friday 07:00.
            (
                "2026-12-23T12:00:00+01:00",
                false,
                Some("2026-12-23T19:00:00+01:00"),
            ),
            (
                "2026-12-24T07:00:00+01:00",
                true,
                Some("2026-12-25T07:00:00+01:00"),
            ),
            (
                "2026-12-24T12:00:00+01:00",
                true,
                Some("2026-12-25T07:00:00+01:00"),
            ),
        ],
    );
}

#[test]
fn the_first_exception_naming_a_date_decides_it() {
    let day = |stopped| ExceptionSpec {
        dates: vec!["2026-12-08".into()],
        from: None,
        to: None,
        stopped,
    };
    let first_stops = nights_and_weekends(vec![day(true), day(false)]);
    let first_runs = nights_and_weekends(vec![day(false), day(true)]);
    assert!(first_stops.stopped_at(ts("2026-12-08T12:00:00+01:00")));
    assert!(!first_runs.stopped_at(ts("2026-12-08T20:00:00+01:00")));
}

#[test]
fn a_skipped_hour_begins_the_window_when_the_clock_jumps() {
    // Berlin springs forward on 2027-03-28 from 02:00 (+01:00) to 03:00 (+02:00):
    // 02:30 does not exist that day, so the window begins at 03:00 local.
    let schedule = compiled(
        "Europe/Berlin",
        vec![window(&[Day::Sun], Some("02:30"), Some("05:00"))],
        vec![],
    );
    check(
        &schedule,
        &[
            (
                "2027-03-28T01:59:59+01:00",
                false,
                Some("2027-03-28T03:00:00+02:00"),
            ),
            (
                "2027-03-28T03:00:00+02:00",
                true,
                Some("2027-03-28T05:00:00+02:00"),
            ),
            // A normal Sunday: 02:30 on the dot.
            (
                "2027-04-04T00:00:00+02:00",
                false,
                Some("2027-04-04T02:30:00+02:00"),
            ),
        ],
    );
    // New York springs forward on 2027-03-14 from 02:00 EST to 03:00 EDT.
    let schedule = compiled(
        "America/New_York",
        vec![window(&[Day::Sun], Some("02:15"), Some("04:00"))],
        vec![],
    );
    check(
        &schedule,
        &[(
            "2027-03-14T01:00:00-05:00",
            false,
            Some("2027-03-14T03:00:00-04:00"),
        )],
    );
}

#[test]
fn a_window_wholly_inside_a_skipped_hour_does_not_run() {
    let schedule = compiled(
        "Europe/Berlin",
        vec![window(&[Day::Sun], Some("02:10"), Some("02:50"))],
        vec![],
    );
    let evaluation = schedule.evaluate(ts("2027-03-28T00:00:00+01:00"));
    assert!(!evaluation.stopped);
    // The next run is a week later, when 02:10 exists.
    assert_eq!(
        evaluation.next_transition,
        Some(ts("2027-04-04T02:10:00+02:00"))
    );
}

#[test]
fn a_repeated_hour_does_not_run_a_window_twice() {
    // Berlin falls back on 2026-10-25 from 03:00 (+02:00) to 02:00 (+01:00): 02:00 to
    // 03:00 happens twice. The window means the first 02:00 to the first 02:45.
    let schedule = compiled(
        "Europe/Berlin",
        vec![window(&[Day::Sun], Some("02:00"), Some("02:45"))],
        vec![],
    );
    check(
        &schedule,
        &[
            (
                "2026-10-25T01:30:00+02:00",
                false,
                Some("2026-10-25T02:00:00+02:00"),
            ),
            (
                "2026-10-25T02:00:00+02:00",
                true,
                Some("2026-10-25T02:45:00+02:00"),
            ),
            // The second 02:15 is outside it, and the window's next run is next Sunday.
            (
                "2026-10-25T02:15:00+01:00",
                false,
                Some("2026-11-01T02:00:00+01:00"),
            ),
        ],
    );
    // New York falls back on 2026-11-01 at 02:00 EDT to 01:00 EST.
    let schedule = compiled(
        "America/New_York",
        vec![window(&[Day::Sun], Some("01:15"), Some("01:45"))],
        vec![],
    );
    check(
        &schedule,
        &[
            (
                "2026-11-01T01:20:00-04:00",
                true,
                Some("2026-11-01T01:45:00-04:00"),
            ),
            (
                "2026-11-01T01:20:00-05:00",
                false,
                Some("2026-11-08T01:15:00-05:00"),
            ),
        ],
    );
}

#[test]
fn a_window_ending_at_midnight_and_whole_days_merge_into_one_stop() {
    let schedule = compiled(
        "UTC",
        vec![
            window(&[Day::Fri], Some("19:00"), Some("24:00")),
            window(&[Day::Sat], None, None),
        ],
        vec![],
    );
    // 2026-12-11 is a Friday: stopped from 19:00 to Sunday 00:00 without a break.
    check(
        &schedule,
        &[
            ("2026-12-11T18:00:00Z", false, Some("2026-12-11T19:00:00Z")),
            ("2026-12-11T19:00:00Z", true, Some("2026-12-13T00:00:00Z")),
        ],
    );
}

#[test]
fn times_may_name_seconds() {
    // 2026-12-11 is a Friday.
    let schedule = compiled(
        "UTC",
        vec![window(&[Day::Fri], Some("10:00:30"), Some("10:01:05"))],
        vec![],
    );
    check(
        &schedule,
        &[
            ("2026-12-11T10:00:29Z", false, Some("2026-12-11T10:00:30Z")),
            ("2026-12-11T10:00:30Z", true, Some("2026-12-11T10:01:05Z")),
            ("2026-12-11T10:01:05Z", false, Some("2026-12-18T10:00:30Z")),
        ],
    );
    let to_the_end = compiled(
        "UTC",
        vec![window(&[Day::Fri], Some("23:59:50"), Some("24:00:00"))],
        vec![],
    );
    assert!(to_the_end.stopped_at(ts("2026-12-11T23:59:59Z")));
    assert!(!to_the_end.stopped_at(ts("2026-12-12T00:00:00Z")));
}

#[test]
fn windows_covering_the_whole_week_never_change() {
    let all = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];
    let schedule = compiled("Europe/Berlin", vec![window(&all, None, None)], vec![]);
    check(&schedule, &[("2026-12-07T12:00:00+01:00", true, None)]);
}

#[test]
fn bad_schedules_name_the_field() {
    let bad = |zone: &str, windows: Vec<WindowSpec>, exceptions: Vec<ExceptionSpec>| {
        Schedule::compile(&ScheduleSpec {
            time_zone: zone.to_owned(),
            windows,
            exceptions,
            after_window: AfterWindow::Leave,
            start_lead_time: None,
        })
        .expect_err("refused")
        .to_string()
    };
    let night = || vec![window(&WEEKDAYS, Some("19:00"), Some("07:00"))];
    let cases = [
        (
            bad("Europe/Berlinn", night(), vec![]),
            "spec.schedule.timeZone: unknown time zone `Europe/Berlinn`",
        ),
        (
            bad("UTC", vec![], vec![]),
            "spec.schedule.windows: at least one window",
        ),
        (
            bad("UTC", vec![window(&[], None, None)], vec![]),
            "spec.schedule.windows[0].days",
        ),
        (
            bad("UTC", vec![window(&WEEKDAYS, Some("25:00"), None)], vec![]),
            "spec.schedule.windows[0].from: `25:00` is not a time",
        ),
        (
            bad("UTC", vec![window(&WEEKDAYS, Some("7:00"), None)], vec![]),
            "spec.schedule.windows[0].from: `7:00`",
        ),
        (
            bad("UTC", vec![window(&WEEKDAYS, None, Some("07:60"))], vec![]),
            "spec.schedule.windows[0].to: `07:60`",
        ),
        (
            bad(
                "UTC",
                vec![window(&WEEKDAYS, Some("07:00:60"), None)],
                vec![],
            ),
            "spec.schedule.windows[0].from: `07:00:60`",
        ),
        (
            bad(
                "UTC",
                vec![window(&WEEKDAYS, Some("07:00:5"), None)],
                vec![],
            ),
            "spec.schedule.windows[0].from: `07:00:5`",
        ),
        (
            bad(
                "UTC",
                vec![window(&WEEKDAYS, Some("07:00:30"), Some("07:00:30"))],
                vec![],
            ),
            "spec.schedule.windows[0]: from and to are both 07:00:30",
        ),
        (
            bad("UTC", vec![window(&WEEKDAYS, Some("24:00"), None)], vec![]),
            "spec.schedule.windows[0].from: a window cannot begin at 24:00",
        ),
        (
            bad(
                "UTC",
                vec![window(&WEEKDAYS, Some("07:00"), Some("07:00"))],
                vec![],
            ),
            "spec.schedule.windows[0]: from and to are both 07:00",
        ),
        (
            bad(
                "UTC",
                night(),
                vec![ExceptionSpec {
                    dates: vec!["2026-02-30".into()],
                    from: None,
                    to: None,
                    stopped: true,
                }],
            ),
            "spec.schedule.exceptions[0].dates[0]: `2026-02-30` is not a calendar date",
        ),
        (
            bad(
                "UTC",
                night(),
                vec![ExceptionSpec {
                    dates: vec![],
                    from: Some("2026-12-11".into()),
                    to: Some("2026-12-07".into()),
                    stopped: false,
                }],
            ),
            "spec.schedule.exceptions[0].to: 2026-12-07 is before from",
        ),
        (
            bad(
                "UTC",
                night(),
                vec![ExceptionSpec {
                    dates: vec![],
                    from: Some("2026-12-11".into()),
                    to: None,
                    stopped: false,
                }],
            ),
            "spec.schedule.exceptions[0]: a date range needs both from and to",
        ),
        (
            bad(
                "UTC",
                night(),
                vec![ExceptionSpec {
                    dates: vec![],
                    from: None,
                    to: None,
                    stopped: true,
                }],
            ),
            "spec.schedule.exceptions[0]: name dates",
        ),
    ];
    for (error, expected) in cases {
        assert!(
            error.starts_with(expected),
            "{error:?} should start with {expected:?}"
        );
    }
}

#[test]
fn an_override_holds_stopping_off_until_it_expires() {
    let schedule = nights_and_weekends(vec![]);
    let until = ts("2026-12-07T23:00:00+01:00");
    // Inside Monday's window, kept running until 23:00, then stopped until 07:00.
    let held = verdict(
        Some(&schedule),
        Some(until),
        ts("2026-12-07T20:00:00+01:00"),
    );
    assert_eq!(
        held,
        Verdict {
            stop: false,
            window_active: true,
            override_until: Some(until),
            next_stop: Some(until),
            next_start: Some(ts("2026-12-08T07:00:00+01:00")),
        }
    );
    // Expired: the override no longer counts, and the status says nothing of it.
    let after = verdict(
        Some(&schedule),
        Some(until),
        ts("2026-12-07T23:00:00+01:00"),
    );
    assert!(after.stop);
    assert_eq!(after.override_until, None);
    // Ending outside a window: the next stop is the next window's start.
    let daytime = verdict(
        Some(&schedule),
        Some(ts("2026-12-07T15:00:00+01:00")),
        ts("2026-12-07T12:00:00+01:00"),
    );
    assert_eq!(daytime.next_stop, Some(ts("2026-12-07T19:00:00+01:00")));
    // Without a schedule: always stopped, but for the override.
    let always = verdict(None, Some(until), ts("2026-12-07T20:00:00+01:00"));
    assert_eq!(
        (always.stop, always.next_stop, always.next_start),
        (false, Some(until), None)
    );
    assert!(verdict(None, None, until).stop);
}

fn zones() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "Europe/Berlin",
        "America/New_York",
        "UTC",
        // 30-minute DST shifts, and a zone without DST at a half-hour offset.
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ])
}

fn day_time() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        (0..24u8, prop::sample::select(vec![0u8, 15, 30, 45]))
            .prop_map(|(h, m)| format!("{h:02}:{m:02}")),
    )
}

fn windows() -> impl Strategy<Value = Vec<WindowSpec>> {
    let all = vec![
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];
    let one = (
        prop::sample::subsequence(all, 1..=7),
        day_time(),
        day_time(),
    )
        .prop_filter("from and to differ", |(_, from, to)| {
            to.as_deref() != Some(from.as_deref().unwrap_or("00:00"))
        })
        .prop_map(|(days, from, to)| WindowSpec { days, from, to });
    prop::collection::vec(one, 1..=3)
}

fn exceptions() -> impl Strategy<Value = Vec<ExceptionSpec>> {
    let date =
        (2026..=2027i16, 1..=12i8, 1..=28i8).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"));
    let one = (date, 0..10i64, any::<bool>()).prop_map(|(from, days, stopped)| {
        let first: jiff::civil::Date = from.parse().expect("a date");
        let last = first
            .checked_add(jiff::Span::new().days(days))
            .expect("in range");
        ExceptionSpec {
            dates: vec![],
            from: Some(first.to_string()),
            to: Some(last.to_string()),
            stopped,
        }
    });
    prop::collection::vec(one, 0..=2)
}

/// Instants in 2026 and 2027, where the exceptions fall.
fn instants() -> impl Strategy<Value = Timestamp> {
    (1_767_225_600i64..1_830_297_600).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_next_transition_is_in_the_future_and_the_state_holds_until_it(
        zone in zones(), windows in windows(), exceptions in exceptions(), at in instants()
    ) {
        let schedule = compiled(zone, windows, exceptions);
        let evaluation = schedule.evaluate(at);
        prop_assert_eq!(evaluation.stopped, schedule.stopped_at(at));
        if let Some(next) = evaluation.next_transition {
            prop_assert!(next > at);
            prop_assert_ne!(schedule.stopped_at(next), evaluation.stopped, "flips at {}", next);
            let span = next.as_second() - at.as_second();
            for step in [1, span / 3, span / 2, span - 1] {
                let t = Timestamp::from_second(at.as_second() + step.clamp(0, span - 1)).expect("in range");
                prop_assert_eq!(schedule.stopped_at(t), evaluation.stopped, "at {} before {}", t, next);
            }
        }
    }

    #[test]
    fn transitions_alternate_and_agree_with_evaluation(
        zone in zones(), windows in windows(), at in instants()
    ) {
        let schedule = compiled(zone, windows, vec![]);
        let mut t = at;
        let mut stopped = schedule.stopped_at(at);
        for _ in 0..6 {
            let Some(next) = schedule.next_transition(t) else { break };
            prop_assert!(next > t);
            prop_assert_eq!(schedule.stopped_at(next), !stopped);
            stopped = !stopped;
            t = next;
        }
    }

    #[test]
    fn the_verdict_stops_only_inside_a_window_and_never_under_an_override(
        zone in zones(), windows in windows(), at in instants(), hold in 0..86_400i64
    ) {
        let schedule = compiled(zone, windows, vec![]);
        let until = Timestamp::from_second(at.as_second() + hold).expect("in range");
        let v = verdict(Some(&schedule), Some(until), at);
        prop_assert_eq!(v.window_active, schedule.stopped_at(at));
        prop_assert_eq!(v.stop, v.window_active && hold == 0);
        for next in [v.next_stop, v.next_start].into_iter().flatten() {
            prop_assert!(next > at);
        }
        if let Some(next_stop) = v.next_stop {
            prop_assert!(next_stop >= until);
            prop_assert!(schedule.stopped_at(next_stop));
        }
    }
}
