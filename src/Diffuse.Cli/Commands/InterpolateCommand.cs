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
    /// <summary>Settings from the command line.</summary>
    public InterpolateSettings()
    {
    }

    /// <summary>Settings given by a request to <c>diffuse serve</c> (internal: the command line builds settings by their one public constructor).</summary>
    internal InterpolateSettings(EditingChoices choices) : base(choices)
    {
    }

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
        InterpolatePlan.CheckEnds(settings);
        settings.EditingSampler();
        var (model, _) = settings.LoadModel("interpolate");
        using (model)
        {
            var plan = InterpolatePlan.For(settings, model);
            using var scope = NewDisposeScope();
            var images = settings.Images is null ? null : EditingIo.Load(settings.Images, model, settings.Resize, null).Images;
            plan.Run(model, images, extension == ".gif", EditingIo.Console(cancellationToken)).Save(settings.Out!);
        }
        return 0;
    }
}

/// <summary>
/// What <c>diffuse interpolate</c> (and the server's interpolate route) does with its options, checked against the
/// model before any work: the ends (two images, encoded, or the initial noise of two seeds), the deterministic sampler,
/// the frames on a spherical or straight path, the class and guidance (default 1).
/// </summary>
/// <param name="Options">The sampler.</param>
/// <param name="Path">Its σ-space path.</param>
/// <param name="Seeds">The two seeds, or null for two images.</param>
/// <param name="Frames">Points on the path, both ends included.</param>
/// <param name="Linear">The straight line instead of the great circle.</param>
/// <param name="Only">--class, or null.</param>
/// <param name="Guidance">The guidance scale.</param>
public sealed record InterpolatePlan(SamplerOptions Options, EditingPath Path, (ulong A, ulong B)? Seeds, int Frames, bool Linear, long? Only, double Guidance)
{
    /// <summary>The most frames a path may have.</summary>
    public const int MaxFrames = 100;

    /// <summary>Checks the ends and the frames: one of --images (two) or --seeds (two), and 2 to <see cref="MaxFrames"/> frames.</summary>
    public static (ulong A, ulong B)? CheckEnds(InterpolateSettings settings)
    {
        if ((settings.Images is null) == (settings.Seeds is null)) throw new DiffuseException("give the two ends with one of --images a.png,b.png or --seeds 1,2.");
        if (settings.Frames < 2 || settings.Frames > MaxFrames) throw new DiffuseException($"--frames must be between 2 and {MaxFrames} (got {settings.Frames}).");
        if (settings.Images is not null)
        {
            if (settings.Images.Split(',', StringSplitOptions.RemoveEmptyEntries).Length != 2) throw new DiffuseException($"--images takes exactly two images, a.png,b.png (got '{settings.Images}').");
            return null;
        }
        var seeds = settings.Seeds!.Split(',', StringSplitOptions.TrimEntries);
        if (seeds.Length != 2 || !ulong.TryParse(seeds[0], NumberStyles.None, CultureInfo.InvariantCulture, out ulong a) || !ulong.TryParse(seeds[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong b))
            throw new DiffuseException($"--seeds takes two seeds, e.g. 1,2 (got '{settings.Seeds}').");
        return (a, b);
    }

    /// <summary>Checks <paramref name="settings"/> against <paramref name="model"/>.</summary>
    /// <exception cref="DiffuseException">An option is invalid (a stochastic sampler, say).</exception>
    public static InterpolatePlan For(InterpolateSettings settings, DiffusionModel model)
    {
        var seeds = CheckEnds(settings);
        var options = settings.EditingSampler();
        var path = EditingPath.Resolve(options, model.Schedule, deterministic: true);
        return new InterpolatePlan(options, path, seeds, settings.Frames, settings.Linear, settings.ClassFor(model), settings.Guidance ?? 1);
    }

    /// <summary>Network evaluations per frame (twice that for the two ends when they are images, which are encoded first).</summary>
    public int Evaluations(DiffusionModel model) => Options.FunctionEvaluations(model.Schedule);

    /// <summary>
    /// The frames between the two <paramref name="images"/> (model range; null for the seeds) as a strip, or as a GIF
    /// there and back (<paramref name="gif"/>).
    /// </summary>
    public EditingOutput Run(DiffusionModel model, Tensor? images, bool gif, EditingRun run)
    {
        int steps = Path.LatentLevels().Length - 1;
        long[]? pair = model.ClassCount == 0 ? null : new[] { Only ?? -1L, Only ?? -1L };
        // Without images: sample 0's initial noise of each seed (stream 0, index 0), as 'sample' draws it.
        var ends = images is not null
            ? run.Progress("encode", steps, run.CancellationToken, (report, token) => model.Encode(images, Options, pair, Guidance, report, cancellationToken: token))
            : cat(new[] { SeededNoise.Normal(Seeds!.Value.A, 0, 0, 1, model.ExampleShape), SeededNoise.Normal(Seeds!.Value.B, 0, 0, 1, model.ExampleShape) });
        var frames = Interpolation.Path(ends[0], ends[1], Frames, Linear);
        var norms = frames.flatten(1).norm(1).data<float>().ToArray();
        run.Log($"{(Linear ? "linear" : "spherical")} path of {Frames} latents: norms {string.Join(" ", norms.Select(n => n.ToString("0.0", CultureInfo.InvariantCulture)))} (ends {norms[0]:0.0} and {norms[^1]:0.0}; √D = {Math.Sqrt(model.Dimensions):0.0})");
        long[]? classes = model.ClassCount == 0 ? null : Enumerable.Repeat(Only ?? -1L, Frames).ToArray();
        var decoded = run.Progress("decode", steps, run.CancellationToken, (report, token) => model.Decode(frames, Options, classes, Guidance, report, cancellationToken: token));
        if (!gif) return EditingIo.Render(true, decoded, Array.Empty<string>(), Frames);
        int c = (int)decoded.shape[1], h = (int)decoded.shape[2], w = (int)decoded.shape[3];
        var bitmaps = Enumerable.Range(0, Frames).Select(k => Figures.RenderImageGrid(Pictures.ToUnit(decoded[k].unsqueeze(0)), 1, c, h, w, 1, scale: h < 64 ? 4 : 1)).ToList();
        try
        {
            var loop = bitmaps.Concat(Enumerable.Reverse(bitmaps).Skip(1).SkipLast(1)).ToList();
            return new EditingOutput(GifWriter.Encode(loop, 12), $"an animation of {Frames} frames (there and back)", null);
        }
        finally
        {
            foreach (var bitmap in bitmaps) bitmap.Dispose();
        }
    }
}
