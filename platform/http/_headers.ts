/**
 * Runs `edit` on the response's headers and returns the response. `Response.redirect()` and `fetch()` responses
 * have immutable headers; for those, `edit` runs on a copy that shares the body without reading it. `edit` must
 * only read and set, so that running it again on the copy after the first write threw gives the same result.
 */
export function editHeaders(res: Response, edit: (headers: Headers) => void): Response {
  try {
    edit(res.headers);
    return res;
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    const copy = new Response(res.body, res);
    edit(copy.headers);
    return copy;
  }
}
