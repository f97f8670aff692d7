using System.Globalization;
using System.Text.Json;
using Diffuse.Checkpoints;
using Diffuse.Cli.Commands;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Imaging;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>An encoded response body.</summary>
/// <param name="Bytes">The body.</param>
/// <param name="ContentType">Its media type.</param>
/// <param name="FileName">A file name for it (Content-Disposition).</param>
internal sealed record EncodedResult(byte[] Bytes, string ContentType, string FileName);

/// <summary>
/// Turns samples into the bytes <c>diffuse sample</c> writes for the same options: the grid PNG of <c>--out grid.png</c>,
/// the PNG files of <c>--out folder</c>, the CSV of <c>--out samples.csv</c>, the scatter plot of <c>--out samples.png</c>;
/// and raw tensors as safetensors.
/// </summary>
internal static class ResultEncoding
{
    public static EncodedResult Encode(ServedModel served, SampleSpec spec, Tensor samples)
    {
        using var scope = NewDisposeScope();
        var model = served.Model;
        switch (spec.Format)
        {
            case "grid":
                return new(Pictures.ImageGridPng(samples, spec.Columns, spec.RowLabels, spec.Scale), "image/png", $"{served.Name}-seed{spec.Seed}.png");
            case "png":
            {
                var bytes = ImageDataset.ToBytes(samples);
                var images = new List<object>();
                for (int i = 0; i < spec.Count; i++)
                {
                    // The names of diffuse sample's folder output: the same seed and number give the same image.
                    string name = spec.Labels is null ? $"seed{spec.Seed}-{i:D5}.png" : $"seed{spec.Seed}-{i:D5}-class{spec.Labels[i]}.png";
                    images.Add(new { name, png = Convert.ToBase64String(Pictures.Png(bytes[i])) });
                }
                return new(JsonSerializer.SerializeToUtf8Bytes(new { images }), "application/json", $"{served.Name}-seed{spec.Seed}.json");
            }
            case "safetensors":
            {
                var metadata = new Dictionary<string, string>
                {
                    ["model"] = served.Name,
                    ["seed"] = spec.Seed.ToString(CultureInfo.InvariantCulture),
                    ["sampler"] = SamplerSpacings.Describe(spec.Options, model.Schedule),
                    ["units"] = model.IsImage ? "model range [-1, 1]" : "data units",
                };
                if (spec.Labels is not null) metadata["classes"] = string.Join(",", spec.Labels);
                if (!model.IsImage) metadata["columns"] = string.Join(",", model.Config.Data.Columns);
                return new(ThroughTemporaryFile(path => Safetensors.Save(path, new Dictionary<string, Tensor> { ["samples"] = samples }, metadata)),
                    "application/octet-stream", $"{served.Name}-seed{spec.Seed}.safetensors");
            }
            case "csv":
                return new(ThroughTemporaryFile(path => CsvTable.Save(path, model.Config.Data.Columns, Rows(samples))), "text/csv", $"{served.Name}-seed{spec.Seed}.csv");
            case "scatter":
            {
                string title = $"{spec.Count} samples, {SamplerNames.Name(spec.Options.Kind)} {spec.Options.StepCount(model.Schedule)} steps";
                using var bitmap = Figures.RenderScatterPanels(new[] { Pictures.Panel(title, samples) }, new FigureOptions(AxisLimit: Pictures.AxisLimit(model.Config.Data)));
                return new(Figures.EncodePng(bitmap), "image/png", $"{served.Name}-seed{spec.Seed}.png");
            }
            case "json":
                return new(JsonSerializer.SerializeToUtf8Bytes(new { columns = model.Config.Data.Columns, rows = Points(samples) }), "application/json", $"{served.Name}-seed{spec.Seed}.json");
            default:
                throw new InvalidOperationException($"unknown format {spec.Format}");
        }
    }

    /// <summary>
    /// What an editing command writes, as a response: its file (a grid or strip as image/png, an animation as
    /// image/gif), or its folder of PNGs as JSON <c>{"images": [{"name", "png"}]}</c> like the png format of sampling.
    /// </summary>
    public static EncodedResult Of(EditingOutput output, string model, string what)
    {
        if (output.File is { } file)
        {
            bool gif = file.AsSpan().StartsWith("GIF8"u8);
            return new(file, gif ? "image/gif" : "image/png", $"{model}-{what}.{(gif ? "gif" : "png")}");
        }
        var images = output.Images!.Select(i => new { name = i.Name, png = Convert.ToBase64String(i.Png) }).ToArray();
        return new(JsonSerializer.SerializeToUtf8Bytes(new { images }), "application/json", $"{model}-{what}.json");
    }

    /// <summary>Rows [N, D] as arrays of floats.</summary>
    public static float[][] Points(Tensor rows)
    {
        var table = Rows(rows);
        var result = new float[table.GetLength(0)][];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = new float[table.GetLength(1)];
            for (int d = 0; d < result[i].Length; d++) result[i][d] = table[i, d];
        }
        return result;
    }

    /// <summary>Rows [N, D] as a table (the conversion of <c>diffuse sample</c>'s CSV output; <paramref name="samples"/> is kept).</summary>
    private static float[,] Rows(Tensor samples) => Commands.SampleCommand.ToRows(samples.alias());

    /// <summary>
    /// The bytes a library writer produces, through a private temporary file (the writers take paths and write
    /// atomically; the path is the server's own, never taken from a request).
    /// </summary>
    public static byte[] ThroughTemporaryFile(Action<string> write)
    {
        string path = Path.Combine(Path.GetTempPath(), $"diffuse-serve-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        try
        {
            write(path);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}

/// <summary>Small pictures of a running request's steps for its progress events.</summary>
internal static class StepPictures
{
    /// <summary>The most images a preview shows.</summary>
    public const int MaxImages = 16;

    /// <summary>The most points a table preview carries.</summary>
    public const int MaxPoints = 2_000;

    /// <summary>Images [N, C, H, W] (clamped to [−1, 1]) as a PNG data URL at one pixel per pixel; tables as points in model units.</summary>
    public static object Of(Tensor states, SampleSpec spec)
    {
        if (states.dim() == 2) return ResultEncoding.Points(states);
        int columns = Math.Min(states.shape[0] < spec.Columns ? (int)states.shape[0] : spec.Columns, (int)Math.Ceiling(Math.Sqrt(states.shape[0])) + 1);
        return "data:image/png;base64," + Convert.ToBase64String(Pictures.ImageGridPng(states.clamp(-1, 1), Math.Max(1, columns), scale: 1));
    }
}
