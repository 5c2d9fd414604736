export { TextLineStream } from "@trellis/platform/testing";
