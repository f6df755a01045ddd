-- Retention asks only about final messages. Indexing only those keeps this index out of the hot
-- writes: accepting a message and claiming it no longer touch it.
DROP INDEX messages_updated;
CREATE INDEX messages_final_updated ON messages (updated_at)
    WHERE status NOT IN ('queued', 'sending');
