export { TextLineStream } from "../../platform/testing/text_line_stream.ts";
