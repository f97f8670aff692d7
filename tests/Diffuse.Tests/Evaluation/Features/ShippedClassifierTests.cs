using Diffuse.Checkpoints;
using Diffuse.Cli.Commands;
using Diffuse.Evaluation;
using Diffuse.Evaluation.Features;

namespace Diffuse.Tests.Evaluation.Features;

/// <summary>The feature classifiers shipped in models/classifiers are the ones eval picks for each data set.</summary>
public class ShippedClassifierTests
{
    [Fact]
    public void TheEmojiClassifierTakesColourImagesOfTheNineCategories()
    {
        string path = ImageEvaluationSets.DefaultFeatures("emoji");
        using var classifier = Assert.IsType<FeatureClassifier>(FeatureNetworks.Load(path));
        Assert.Equal(new FeatureClassifierConfig(3, 32, 32, Diffuse.Data.Images.EmojiDatasets.Categories.Count), classifier.Config);
        Assert.Equal("Diffuse Twemoji features", classifier.Name);
        var metadata = Safetensors.ReadHeader(path).Metadata;
        Assert.InRange(double.Parse(metadata["test_accuracy"], System.Globalization.CultureInfo.InvariantCulture), 0.7, 1.0);
        Assert.Equal("horizontal flips", metadata["augmentation"]);
    }

    [Fact]
    public void DataSetsWithoutAShippedClassifierSaySoAndHowToTrainOne()
    {
        var e = Assert.Throws<DiffuseException>(() => ImageEvaluationSets.DefaultFeatures("emoji-google"));
        Assert.Contains("no feature network is known for emoji-google", e.Message);
        Assert.Contains("train-classifier <fashion-mnist|mnist|emoji|emoji-google>", e.Message);
    }
}
