-- One row per successful poll and backfill listed in it, in the state the poll saw.
-- A poll's rows depend only on what was stored up to that poll: a build adds the rows of the
-- polls stored since the last one (staging.scope_polls).
with polls as (
    select * from staging.stg_supermetrics__polls
    where outcome = 'ok'
),

new_polls as (
    {{ scoped_rows(polls, polls) }}
),

first_new_poll as (
    select coalesce(min(poll_id), (select max(poll_id) + 1 from polls)) as poll_id from new_polls
),

stretches as (
    -- the stretches that reach into the new polls
    select * from staging.int_listing_stretches
    where coalesce(unlisted_at_poll_id, (select max(poll_id) + 1 from polls)) > (select poll_id from first_new_poll)
),

transfers as (
    select * from analytics.transfers
),

versions as (
    -- the stored states that still held at a new poll, of the backfills listed in one. A join with
    -- those backfills, not `exists`: DuckDB then expects about as many states as there are, and
    -- hashes the team's polls, not the states, in the joins below (50 teams' year: 23 -> 16 s)
    select held.* from staging.int_backfill_versions_sequenced as held
    inner join (select distinct team_id, transfer_backfill_id from stretches) as listed
        on listed.team_id = held.team_id and listed.transfer_backfill_id = held.transfer_backfill_id
    where held.next_poll_id is null or held.next_poll_id > (select poll_id from first_new_poll)
),

-- each team's new polls numbered in poll order: a stretch's listed polls are a range of these
-- positions (not of poll ids: one run numbers the polls of all its teams one after another, so a
-- range of poll ids holds every team's polls)
team_polls as (
    select
        poll_id,
        team_id,
        polled_at,
        row_number() over (partition by team_id order by poll_id) as position
    from new_polls
),

-- each stretch's first and last listed poll among them: the count of the team's new polls before
-- its listing (or the first new poll) and before its unlisting. In poll order over both sides (a
-- bound sorts before a poll of the same id), a bound's count is its row number less its number
-- among the bounds: two plain row numbers, where a running max over a frame costs seven times
-- more at 50 teams' year
stretch_bounds as (
    select
        team_id,
        transfer_backfill_id,
        listed_from_poll_id,
        greatest(listed_from_poll_id, (select poll_id from first_new_poll)) as poll_id,
        0 as is_last
    from stretches
    union all
    select
        team_id,
        transfer_backfill_id,
        listed_from_poll_id,
        coalesce(unlisted_at_poll_id, (select max(poll_id) + 1 from polls)) as poll_id,
        1 as is_last
    from stretches
),

bound_timeline as (
    select
        team_id,
        poll_id,
        0 as is_poll,
        transfer_backfill_id,
        listed_from_poll_id,
        is_last
    from stretch_bounds
    union all
    select
        team_id,
        poll_id,
        1 as is_poll,
        cast(null as bigint) as transfer_backfill_id,
        cast(null as bigint) as listed_from_poll_id,
        cast(null as integer) as is_last
    from team_polls
),

bound_positions as (
    select
        team_id,
        transfer_backfill_id,
        listed_from_poll_id,
        is_last,
        is_poll,
        row_number() over (
            partition by team_id order by poll_id, is_poll, transfer_backfill_id, listed_from_poll_id, is_last
        ) - row_number() over (
            partition by team_id, is_poll order by poll_id, is_poll, transfer_backfill_id, listed_from_poll_id, is_last
        ) as polls_before
    from bound_timeline
),

listed_ranges as (
    select
        team_id,
        transfer_backfill_id,
        max(case when is_last = 0 then polls_before + 1 end) as first_position,
        max(case when is_last = 1 then polls_before end) as last_position
    from bound_positions
    where is_poll = 0
    group by team_id, transfer_backfill_id, listed_from_poll_id
),

-- the positions each state held: from its own poll (or the first new poll) to the one before the
-- next state's. Both are polls of the team that listed it (a lookup follows its team's listing in
-- the same poll): an equality join finds their positions, where an as-of join of every listed
-- poll with every version would sort both
version_ranges as (
    select
        versions.*,
        case
            when versions.poll_id < (select poll_id from first_new_poll) then 1
            else from_poll.position
        end as first_position,
        until_poll.position - 1 as until_position,
        from_poll.position as own_position,
        from_poll.polled_at as own_polled_at
    from versions
    left join team_polls as from_poll
        on from_poll.team_id = versions.team_id and from_poll.poll_id = versions.poll_id
    left join team_polls as until_poll
        on until_poll.team_id = versions.team_id and until_poll.poll_id = versions.next_poll_id
),

-- each state's listed positions: its range within each listed stretch
listed_pieces as (
    select
        version_ranges.*,
        greatest(version_ranges.first_position, listed_ranges.first_position) as piece_first,
        case
            when version_ranges.next_poll_id is null then listed_ranges.last_position
            else least(version_ranges.until_position, listed_ranges.last_position)
        end as piece_last
    from version_ranges
    inner join listed_ranges
        on
            listed_ranges.team_id = version_ranges.team_id
            and listed_ranges.transfer_backfill_id = version_ranges.transfer_backfill_id
),

-- the positions of each state's listed polls, but for a state that holds for its own poll only
listed_positions as (
    select
        listed_pieces.*,
        listed_position.position
    from listed_pieces,
        generate_series(listed_pieces.piece_first, listed_pieces.piece_last) as listed_position (position)
    where listed_pieces.piece_first < listed_pieces.piece_last
    union all
    select
        listed_pieces.*,
        listed_pieces.piece_first as position
    from listed_pieces
    where
        listed_pieces.piece_first = listed_pieces.piece_last
        and listed_pieces.piece_first is distinct from listed_pieces.own_position
),

-- each state's listed polls. Most states hold for their own poll only (a running backfill moves
-- between polls): those need neither a series nor a join to find that poll
listed_polls as (
    select
        listed_pieces.*,
        listed_pieces.own_position as position,
        listed_pieces.poll_id as listed_poll_id,
        listed_pieces.own_polled_at as listed_polled_at
    from listed_pieces
    where
        listed_pieces.piece_first = listed_pieces.piece_last
        and listed_pieces.piece_first = listed_pieces.own_position
    union all
    select
        listed_positions.*,
        team_polls.poll_id as listed_poll_id,
        team_polls.polled_at as listed_polled_at
    from listed_positions
    inner join team_polls
        on
            team_polls.team_id = listed_positions.team_id
            and team_polls.position = listed_positions.position
),

progress_rows as (
    select
        listed_poll_id as poll_id,
        listed_polled_at as polled_at,
        team_id,
        transfer_backfill_id,
        transfer_id,
        status,
        transfer_runs_total,
        transfer_runs_created,
        transfer_runs_completed,
        transfer_runs_failed,
        cast(round(  -- a double on every engine (PostgreSQL's and Spark's round gives a decimal)
            100.0 * (transfer_runs_completed + transfer_runs_failed) / nullif(transfer_runs_total, 0), 2
        ) as double precision) as progress_pct,
        error_count,
        poll_id as version_poll_id
    from listed_polls
),

final as (
    select
        progress_rows.*,
        transfers.transfer_name
    from progress_rows
    left join transfers
        on
            transfers.team_id = progress_rows.team_id
            and transfers.transfer_id = progress_rows.transfer_id
)

select * from final
