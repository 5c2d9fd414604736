-- While a topic is backed off, the relay selects its batch topic by topic (platform/outbox, SELECT_EXCLUDING):
-- this index finds the topics with unpublished rows and each topic's oldest rows without scanning past a dead
-- destination's backlog.
create index outbox_unpublished_topic on outbox (topic, seq) where published_at is null;
