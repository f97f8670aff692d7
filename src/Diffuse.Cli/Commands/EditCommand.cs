using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse edit</c>.</summary>
public sealed class EditSettings : ImageEditingSettings
{
    /// <summary>Strength.</summary>
    [CommandOption("--strength <S>")]
    [Description("How far towards pure noise the image is taken before it is denoised, in (0, 1]]: 0.3 keeps the shape and redraws detail, 1 keeps nothing (default 0.5).")]
    public double Strength { get; init; } = 0.5;
}

/// <summary><c>diffuse edit</c>: image-to-image by SDEdit (noise to a strength, denoise, optionally towards another class).</summary>
public sealed class EditCommand : Command<EditSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, EditSettings settings, CancellationToken cancellationToken)
    {
        EditingIo.CheckOut(settings.Out);
        ImageToImage.StepsAt(settings.Strength, 1);
        var options = settings.EditingSampler();
        var (model, _) = settings.LoadModel("edit");
        using (model)
        {
            var path = EditingPath.Resolve(options, model.Schedule, deterministic: false);
            long? only = settings.ClassFor(model);
            double guidance = settings.Guidance ?? SamplingDefaults.Guidance;
            using var scope = NewDisposeScope();
            var (images, labels, names) = EditingIo.Load(settings.Image!, model, settings.Resize, settings.Count, "--image");
            int count = (int)images.shape[0], steps = ImageToImage.StepsAt(settings.Strength, path.Steps);
            long[]? classes = model.ClassCount == 0 ? null : only is { } k ? Enumerable.Repeat(k, count).ToArray() : labels ?? Enumerable.Repeat(-1L, count).ToArray();
            string towards = model.ClassCount == 0 ? "" : only is { } c ? $", towards class {c} ({model.ClassNames[(int)c]}), guidance {guidance:0.##}" : labels is not null ? $", the images' classes, guidance {guidance:0.##}" : ", unconditional";
            CliContext.Out.WriteLine($"SDEdit of {count} images at strength {settings.Strength:0.###}: the last {steps} of {SamplerSpacings.Describe(options, model.Schedule)}, from σ = {path.Sigmas[path.Steps - steps]:G4}{towards}");
            var edited = EditingIo.WithProgress("edit", EditingIo.Total(steps, count), cancellationToken, (report, token) =>
                model.Edit(images, settings.Strength, settings.Seed, options, classes, guidance, report, cancellationToken: token));
            CliContext.Out.WriteLine($"distance to the sources: {EditingIo.Reconstruction(images, edited)}");
            if (Path.GetExtension(settings.Out!).Length > 0)
                EditingIo.Write(settings.Out!, cat(new[] { images, edited }), names, count, new[] { "before", "after" });
            else EditingIo.Write(settings.Out!, edited, names.Select(n => n + "-edited").ToArray(), count);
        }
        return 0;
    }
}
