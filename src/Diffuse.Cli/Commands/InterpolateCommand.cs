using System.ComponentModel;
using System.Globalization;
using Diffuse.Editing;
using Diffuse.Imaging;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse interpolate</c>.</summary>
public sealed class InterpolateSettings : EditingSettings
{
    /// <summary>Images.</summary>
    [CommandOption("--images <A,B>")]
    [Description("Two images, a.png,b.png: they are encoded (DDIM inversion) and the path between their latents decoded.")]
    public string? Images { get; init; }

    /// <summary>Seeds.</summary>
    [CommandOption("--seeds <S1,S2>")]
    [Description("Two seeds: the path between the initial noise of sample 0 of each, decoded (what 'sample' would draw at each end).")]
    public string? Seeds { get; init; }

    /// <summary>Frames.</summary>
    [CommandOption("--frames <K>")]
    [Description("Points on the path, both ends included (default 9).")]
    public int Frames { get; init; } = 9;

    /// <summary>Linear.</summary>
    [CommandOption("--linear")]
    [Description("Interpolate linearly instead of spherically, to see why not: the latents' norm dips in the middle, and the images fade.")]
    public bool Linear { get; init; }

    /// <summary>Output.</summary>
    [CommandOption("--out <FILE>")]
    [Description("strip.png (the frames side by side) or anim.gif (there and back).")]
    public string? Out { get; init; }
}

/// <summary><c>diffuse interpolate</c>: a path between two images or two seeds through the latent space.</summary>
public sealed class InterpolateCommand : Command<InterpolateSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, InterpolateSettings settings, CancellationToken cancellationToken)
    {
        string extension = EditingIo.CheckOut(settings.Out, gif: true);
        if (extension == "") throw new DiffuseException($"--out must be a .png strip or a .gif animation (got '{settings.Out}').");
        if ((settings.Images is null) == (settings.Seeds is null)) throw new DiffuseException("give the two ends with one of --images a.png,b.png or --seeds 1,2.");
        if (settings.Frames < 2 || settings.Frames > 100) throw new DiffuseException($"--frames must be between 2 and 100 (got {settings.Frames}).");
        var options = settings.EditingSampler();
        var (model, _) = settings.LoadModel("interpolate");
        using (model)
        {
            var path = EditingPath.Resolve(options, model.Schedule, deterministic: true);
            long? only = settings.ClassFor(model);
            double guidance = settings.Guidance ?? 1;
            int steps = path.LatentLevels().Length - 1;
            using var scope = NewDisposeScope();
            long[]? pair = model.ClassCount == 0 ? null : new[] { only ?? -1L, only ?? -1L };
            Tensor ends;
            if (settings.Images is not null)
            {
                if (settings.Images.Split(',', StringSplitOptions.RemoveEmptyEntries).Length != 2) throw new DiffuseException($"--images takes exactly two images, a.png,b.png (got '{settings.Images}').");
                var (images, _, _) = EditingIo.Load(settings.Images, model, settings.Resize, null);
                ends = EditingIo.WithProgress("encode", steps, cancellationToken, (report, token) => model.Encode(images, options, pair, guidance, report, cancellationToken: token));
            }
            else
            {
                var seeds = settings.Seeds!.Split(',', StringSplitOptions.TrimEntries);
                if (seeds.Length != 2 || !ulong.TryParse(seeds[0], NumberStyles.None, CultureInfo.InvariantCulture, out ulong a) || !ulong.TryParse(seeds[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong b))
                    throw new DiffuseException($"--seeds takes two seeds, e.g. 1,2 (got '{settings.Seeds}').");
                // Sample 0's initial noise of each seed: stream 0, index 0, as 'sample' draws it.
                ends = cat(new[] { SeededNoise.Normal(a, 0, 0, 1, model.ExampleShape), SeededNoise.Normal(b, 0, 0, 1, model.ExampleShape) });
            }
            var frames = Interpolation.Path(ends[0], ends[1], settings.Frames, settings.Linear);
            var norms = frames.flatten(1).norm(1).data<float>().ToArray();
            CliContext.Out.WriteLine($"{(settings.Linear ? "linear" : "spherical")} path of {settings.Frames} latents: norms {string.Join(" ", norms.Select(n => n.ToString("0.0", CultureInfo.InvariantCulture)))} (ends {norms[0]:0.0} and {norms[^1]:0.0}; √D = {Math.Sqrt(model.Dimensions):0.0})");
            long[]? classes = model.ClassCount == 0 ? null : Enumerable.Repeat(only ?? -1L, settings.Frames).ToArray();
            var decoded = EditingIo.WithProgress("decode", steps, cancellationToken, (report, token) => model.Decode(frames, options, classes, guidance, report, cancellationToken: token));
            if (extension == ".png") EditingIo.Write(settings.Out!, decoded, Array.Empty<string>(), settings.Frames);
            else
            {
                int c = (int)decoded.shape[1], h = (int)decoded.shape[2], w = (int)decoded.shape[3];
                var bitmaps = Enumerable.Range(0, settings.Frames).Select(k => Figures.RenderImageGrid(Pictures.ToUnit(decoded[k].unsqueeze(0)), 1, c, h, w, 1, scale: h < 64 ? 4 : 1)).ToList();
                var loop = bitmaps.Concat(Enumerable.Reverse(bitmaps).Skip(1).SkipLast(1)).ToList();
                try { GifWriter.Save(settings.Out!, loop, 12); }
                finally { foreach (var bitmap in bitmaps) bitmap.Dispose(); }
                CliContext.Out.WriteLine($"wrote an animation of {settings.Frames} frames (there and back) to {Path.GetFullPath(settings.Out!)}");
            }
        }
        return 0;
    }
}
