import CRSVG
import Foundation
import QTrainCore

/// Pictures of SVG documents (the report's), drawn by librsvg and cairo: the one place that links them.
public enum PNGRendering {
    /// Draws `svg` (one of the report's SVG documents) into a PNG file at `url` with librsvg
    /// and cairo, `scale` pixels per SVG unit (2 for sharp pictures on high-density screens).
    /// The file is written under a temporary name and renamed, so a failure leaves none.
    public static func write(svg: String, to url: URL, scale: Double = 2) throws {
        func failure(_ why: String) -> QTrainError {
            QTrainError(
                .io, "cannot draw \(url.path): \(why)",
                hint:
                    "librsvg and a font are needed (launch/setup.sh installs librsvg2-dev and fonts-dejavu-core); or write .svg"
            )
        }
        var error: UnsafeMutablePointer<GError>?
        let bytes = Array(svg.utf8)
        guard
            let handle = bytes.withUnsafeBufferPointer({
                rsvg_handle_new_from_data($0.baseAddress, gsize($0.count), &error)
            })
        else {
            defer { g_clear_error(&error) }
            throw failure(
                "librsvg cannot read the SVG (\(error.map { String(cString: $0.pointee.message) } ?? "no reason given"))"
            )
        }
        defer { g_object_unref(UnsafeMutableRawPointer(handle)) }
        var width = 0.0, height = 0.0
        guard rsvg_handle_get_intrinsic_size_in_pixels(handle, &width, &height) != 0, width > 0, height > 0 else {
            throw failure("the SVG has no width and height")
        }
        let pixelsWide = Int32((width * scale).rounded(.up)), pixelsHigh = Int32((height * scale).rounded(.up))
        guard let surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, pixelsWide, pixelsHigh),
            cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS
        else {
            throw failure("cairo cannot make a \(pixelsWide)×\(pixelsHigh) image")
        }
        defer { cairo_surface_destroy(surface) }
        guard let context = cairo_create(surface) else { throw failure("cairo cannot draw") }
        defer { cairo_destroy(context) }
        // An opaque white ground: a PNG with a transparent one shows the text unreadably on dark viewers.
        cairo_set_source_rgb(context, 1, 1, 1)
        cairo_paint(context)
        cairo_scale(context, scale, scale)
        var viewport = RsvgRectangle(x: 0, y: 0, width: width, height: height)
        guard rsvg_handle_render_document(handle, context, &viewport, &error) != 0 else {
            defer { g_clear_error(&error) }
            throw failure(
                "librsvg cannot render the SVG (\(error.map { String(cString: $0.pointee.message) } ?? "no reason given"))"
            )
        }
        cairo_surface_flush(surface)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(getpid())")
        let status = cairo_surface_write_to_png(surface, temporary.path)
        guard status == CAIRO_STATUS_SUCCESS else {
            try? FileManager.default.removeItem(at: temporary)
            throw failure(String(cString: cairo_status_to_string(status)))
        }
        try rename(temporary, to: url)
    }
}
