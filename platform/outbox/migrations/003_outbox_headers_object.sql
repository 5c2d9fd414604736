-- enqueue() used to bind the headers as a JSON text, which the driver encoded once more, so rows held a jsonb
-- string instead of an object. enqueue() now binds the object; this turns rows written before into objects, so the
-- relay reads every row's headers as the Database contract returns jsonb: parsed, with no second parse.
update outbox set headers = (headers #>> '{}')::jsonb where jsonb_typeof(headers) = 'string';
